import net from 'node:net';
import { ACCEPT_WINDOW_MS, ACK_MARGIN_MS, monotonicMs, type ToPrimary } from './protocol.ts';
import { refuse } from './sticky.ts';
import type { WorkerProcess } from './worker-process.ts';

/**
 * Connection handoff with acknowledgement: the primary keeps its copy of an accepted socket until a worker says
 * it took the connection, so a worker that dies with the socket still in its IPC pipe loses nothing: the
 * socket goes to the next worker in order, or gets the 503 when none is ready.
 *
 * Node's own handoff (cluster's RoundRobinHandle, or `send(msg, socket)` without keepOpen) gives the socket
 * away when it is written to the pipe; if the worker dies before reading it, the client waits for its own
 * timeout. Here the socket is only let go on the worker's `conn-ack`, sent right after it emitted
 * 'connection' and before it reads a byte.
 */

/**
 * What the receiving worker is told with the socket: the sticky key it was dealt by (a moved connection goes back
 * to the key's owner) and, for a moved connection, the port the client connected to (its server there takes it).
 */
interface DealMeta {
  key?: string;
  port?: number;
}

interface Pending {
  socket: net.Socket;
  head: Buffer | undefined;
  headB64: string | undefined;
  meta: DealMeta;
  /** Candidates in order of preference (rendezvous rank, or the round-robin rotation). */
  order: readonly WorkerProcess[];
  next: number;
  worker: WorkerProcess | undefined;
  timer: NodeJS.Timeout | undefined;
}

export class Handoff {
  readonly #pending = new Map<number, Pending>();
  readonly #byWorker = new Map<WorkerProcess, Set<number>>();
  #nextId = 1;

  /** Hands `socket` to the first ready worker of `order`, falling through the rest; refuses when none takes it. */
  deal(socket: net.Socket, head: Buffer | undefined, order: readonly WorkerProcess[], meta: DealMeta = {}): void {
    const id = this.#nextId++;
    const p: Pending = { socket, head, headB64: head?.toString('base64'), meta, order, next: 0, worker: undefined, timer: undefined };
    this.#pending.set(id, p);
    this.#attempt(id, p);
  }

  /**
   * A retiring worker gives back an idle keep-alive connection (`move`, the TCP handle with it). Taken within the
   * worker's window, it is dealt to `order` like a new connection and the worker is told to close its copy;
   * otherwise the worker keeps it (and closes it itself, as without moving).
   */
  takeBack(from: WorkerProcess, msg: Extract<ToPrimary, { cs: 'move' }>, handle: unknown, order: readonly WorkerProcess[]): void {
    const taken = handle !== undefined && handle !== null && order.length > 0 && monotonicMs() <= msg.by;
    // pauseOnCreate: the primary never reads from it; unread bytes stay in the kernel for the next worker.
    const socket = handle ? new net.Socket({ handle: handle as never, readable: true, writable: true, pauseOnCreate: true } as net.SocketConstructorOpts) : undefined;
    socket?.on('error', () => socket.destroy());
    from.send({ cs: 'moved', id: msg.id, taken });
    // Declined: closing this copy sends nothing to the client, the worker still holds its own.
    if (!taken) return void socket?.destroy();
    this.deal(socket!, undefined, order, { port: msg.port, ...(msg.key !== undefined ? { key: msg.key } : {}) });
  }

  /** Connections sent and not yet acknowledged (for tests and status). */
  get pending(): number {
    return this.#pending.size;
  }

  /** The worker took connection `id`: the primary's copy of the socket is closed (the worker's stays open). */
  acked(wp: WorkerProcess, id: number): void {
    const p = this.#detach(wp, id);
    if (!p) return;
    this.#pending.delete(id);
    // destroy() closes this process's descriptor only; no FIN or RST is sent while the worker holds its own.
    p.socket.destroy();
  }

  /** The worker declined connection `id` (too late, or no server to give it to), or sending it failed. */
  declined(wp: WorkerProcess, id: number): void {
    const p = this.#detach(wp, id);
    if (p) this.#attempt(id, p);
  }

  /**
   * The worker's IPC channel closed: every socket sent to it and not acknowledged goes to the next candidate.
   * Called on 'disconnect' (not 'exit'), when every message the worker wrote before dying, acks included, has
   * been read, so an acknowledged socket is never dealt twice.
   */
  workerGone(wp: WorkerProcess): void {
    const ids = this.#byWorker.get(wp);
    if (!ids) return;
    this.#byWorker.delete(wp);
    for (const id of ids) {
      const p = this.#pending.get(id);
      if (!p || p.worker !== wp) continue;
      clearTimeout(p.timer);
      p.worker = undefined;
      this.#attempt(id, p);
    }
  }

  #detach(wp: WorkerProcess, id: number): Pending | undefined {
    const p = this.#pending.get(id);
    if (!p || p.worker !== wp) return undefined;
    clearTimeout(p.timer);
    p.worker = undefined;
    this.#byWorker.get(wp)?.delete(id);
    return p;
  }

  #attempt(id: number, p: Pending): void {
    while (p.next < p.order.length) {
      const wp = p.order[p.next++]!;
      // A worker that started retiring or died since the order was computed gets nothing new.
      if (wp.phase !== 'ready' || p.socket.destroyed) continue;
      p.worker = wp;
      let ids = this.#byWorker.get(wp);
      if (!ids) this.#byWorker.set(wp, (ids = new Set()));
      ids.add(id);
      // setImmediate after the timer: the poll phase in between reads an ack already waiting in the pipe.
      p.timer = setTimeout(() => setImmediate(() => this.declined(wp, id)), ACCEPT_WINDOW_MS + ACK_MARGIN_MS);
      const msg = { cs: 'conn' as const, id, by: monotonicMs() + ACCEPT_WINDOW_MS, ...(p.headB64 ? { head: p.headB64 } : {}), ...p.meta };
      wp.sendConnection(msg, p.socket, () => this.declined(wp, id));
      return;
    }
    this.#pending.delete(id);
    refuse(p.socket, p.head);
  }
}
