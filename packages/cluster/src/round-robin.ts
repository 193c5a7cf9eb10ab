import net from 'node:net';
import type { Handoff } from './handoff.ts';
import type { ToPrimary, ToWorker } from './protocol.ts';
import type { WorkerProcess } from './worker-process.ts';

/**
 * Round-robin scheduling done by the primary itself, as node:cluster's RoundRobinHandle does it, but through the
 * acknowledged Handoff: a worker's `listen(PORT)` asks the primary to accept on that address (bound once, shared
 * by every worker that asks), and each connection is dealt to the next ready worker; if that worker dies before
 * taking it, the one after gets it.
 */

interface Listener {
  server: net.Server;
  bound: Promise<net.AddressInfo>;
  members: WorkerProcess[];
  turn: number;
}

type ListenMsg = Extract<ToPrimary, { cs: 'listen' }>;
type ListenReply = Extract<ToWorker, { cs: 'listening' } | { cs: 'listen-error' }>;

/** `items` starting at position `turn` (modulo their number), the ones before it after. */
export function inTurn<T>(items: readonly T[], turn: number): T[] {
  const start = turn % Math.max(1, items.length);
  return [...items.slice(start), ...items.slice(0, start)];
}

export class RoundRobinListeners {
  readonly #handoff: Handoff;
  readonly #listeners = new Map<string, Listener>();
  #closed = false;

  constructor(handoff: Handoff) {
    this.#handoff = handoff;
  }

  /** A worker listens on `msg.port`/`msg.host`: bind it (first time) and count the worker in. */
  async listen(wp: WorkerProcess, msg: ListenMsg): Promise<ListenReply> {
    if (this.#closed) return { cs: 'listen-error', id: msg.id, code: 'ERR_SERVER_NOT_RUNNING', message: 'the cluster is stopping' };
    const key = `${msg.host ?? ''}|${msg.port}`;
    let l = this.#listeners.get(key);
    if (!l) {
      const server = net.createServer({ pauseOnConnect: true }, (socket) => this.#deal(l!, socket));
      const bound = new Promise<net.AddressInfo>((resolve, reject) => {
        server.once('error', reject);
        server.listen(msg.port, msg.host, () => {
          server.off('error', reject);
          resolve(server.address() as net.AddressInfo);
        });
      });
      l = { server, bound, members: [], turn: 0 };
      this.#listeners.set(key, l);
      // A failed bind is forgotten, so a restarted worker tries again (the port may be free by then).
      bound.catch(() => this.#listeners.get(key) === l && this.#listeners.delete(key));
    }
    try {
      const address = await l.bound;
      if (!l.members.includes(wp)) l.members.push(wp);
      void wp.exited.then(() => {
        const i = l.members.indexOf(wp);
        if (i !== -1) l.members.splice(i, 1);
      });
      return { cs: 'listening', id: msg.id, address: address.address, family: address.family, port: address.port };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return { cs: 'listen-error', id: msg.id, code: e.code ?? 'ERR_LISTEN', message: e.message };
    }
  }

  #deal(l: Listener, socket: net.Socket): void {
    socket.on('error', () => socket.destroy());
    // The next worker in turn first; the others, in turn order, take it if that one dies before taking it.
    this.#handoff.deal(socket, undefined, inTurn(l.members.filter((wp) => wp.phase === 'ready'), l.turn++));
  }

  /** Stop accepting (stop, force stop). Connections already dealt are unaffected. */
  close(): void {
    this.#closed = true;
    for (const l of this.#listeners.values()) l.server.close();
    this.#listeners.clear();
  }
}
