import dc from 'node:diagnostics_channel';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { ClusterWorkerError } from './errors.ts';
import { reportFatalConfigErrors } from './fatal.ts';
import { monotonicMs, type ToWorker } from './protocol.ts';
import { adopt, moved, onRequest, retire, serverOn, track } from './worker-retire.ts';
import { collectMetrics, figures, startStats } from './worker-stats.ts';
import { contract, managed, roundRobin, send, st, stickyMode, waitReady } from './worker-state.ts';

/**
 * The worker side: readiness, the primary's messages and the intercepted `listen(PORT)`, for apps that never
 * heard of us (connections and retirement: worker-retire.ts).
 *
 * The preload (`--import`) calls install() before the app's entry runs, so a plain `app.listen(PORT)` is found
 * through diagnostics_channel. Sticky and round-robin modes are the exception: the primary owns PORT and hands
 * each connection over with an acknowledgement, so `listen(PORT)` must not bind; there the preload intercepts
 * that one listen call (in round-robin mode it asks the primary to bind the address the app asked for).
 */

function markListening(): void {
  if (!waitReady()) markReady();
}

function markReady(): void {
  if (st.readySent || !managed()) return;
  st.readySent = true;
  send({ cs: 'ready' });
}

function onMessage(msg: unknown, handle: unknown): void {
  if (msg === null || typeof msg !== 'object' || !('cs' in msg)) return;
  const m = msg as ToWorker;
  if (m.cs === 'conn') {
    const socket = handle as net.Socket | undefined;
    // A moved connection names the port its client connected to: PORT's server (the primary's in rr and sticky
    // modes), or whichever server of the app listens there (node:cluster's, in 'os' mode or for other ports).
    const target = m.port === undefined || (m.port === contract()?.port && st.target) ? st.target : serverOn(m.port);
    // Declined: past the primary's window (it may give the socket to another worker any moment now), no server
    // for PORT (the app never listened, or closed it), or TLS bytes already read by a trustProxy primary.
    // Destroying our copy closes only this descriptor: the primary still holds the connection and re-deals it.
    if (!socket || !target || (target === st.target && st.targetClosed) || monotonicMs() > m.by || (m.head && target instanceof tls.Server)) {
      socket?.destroy();
      send({ cs: 'conn-nack', id: m.id });
      return;
    }
    // What net.Server does for a connection it accepted itself (http.Server defaults to noDelay: without it
    // Nagle's algorithm delays small keep-alive responses).
    const opts = target as net.Server & { noDelay?: boolean; keepAlive?: boolean; keepAliveInitialDelay?: number };
    if (opts.noDelay) socket.setNoDelay(true);
    if (opts.keepAlive) socket.setKeepAlive(true, (opts.keepAliveInitialDelay ?? 0) * 1000);
    target.emit('connection', socket);
    const conn = track(socket);
    conn.key = m.key;
    // Bytes the primary read are parsed only below: not idle (so not movable) until their request has ended.
    if (m.head) conn.readAtIdle = -1;
    // Acknowledge before reading a byte: until the primary has this, it may re-deal the socket if we die.
    send({ cs: 'conn-ack', id: m.id });
    if (m.head) socket.emit('data', Buffer.from(m.head, 'base64'));
    socket.resume();
  } else if (m.cs === 'listening' || m.cs === 'listen-error') {
    pendingListens.get(m.id)?.(m);
    pendingListens.delete(m.id);
  } else if (m.cs === 'retire') {
    retire(m.move === true);
  } else if (m.cs === 'moved') {
    moved(m.id, m.taken);
  } else if (m.cs === 'stats') {
    send({ cs: 'stats', id: m.id, rss: process.memoryUsage.rss(), requests: st.requests, figures: figures() });
  } else if (m.cs === 'metrics') {
    void collectMetrics().then(
      (metrics) => send({ cs: 'metrics', id: m.id, metrics }),
      () => send({ cs: 'metrics', id: m.id, metrics: [] }),
    );
  }
}

function requestedPort(args: unknown[]): number | undefined {
  const first = args[0];
  if (typeof first === 'number') return first;
  if (typeof first === 'string' && /^\d+$/.test(first)) return Number(first);
  if (first && typeof first === 'object' && 'port' in first) return Number((first as { port: unknown }).port);
  return undefined;
}

function requestedHost(args: unknown[]): string | undefined {
  const [first, second] = args;
  if (typeof second === 'string') return second;
  if (first && typeof first === 'object' && 'host' in first && typeof first.host === 'string') return first.host;
  return undefined;
}

type ListenReply = Extract<ToWorker, { cs: 'listening' } | { cs: 'listen-error' }>;
const pendingListens = new Map<number, (reply: ListenReply) => void>();
let nextListenId = 1;

function interceptListen(): void {
  const appPort = contract()?.port;
  if (appPort === undefined) return; // no PORT: nothing to intercept; other ports use node:cluster as usual
  const original = net.Server.prototype.listen;
  net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) {
    if (st.target !== undefined || requestedPort(args) !== appPort) {
      return (original as (...a: unknown[]) => net.Server).apply(this, args);
    }
    // The primary owns the port and hands this server its connections; binding here would collide.
    st.target = this;
    adopt(this);
    this.once('close', () => (st.targetClosed = true));
    const cb = args.at(-1);
    if (typeof cb === 'function') this.once('listening', cb as () => void);
    const listening = (address: net.AddressInfo) => {
      this.address = () => address;
      this.emit('listening');
      markListening();
    };
    if (!roundRobin()) {
      const address = { address: contract()?.host ?? '::', family: 'IPv6', port: appPort };
      process.nextTick(listening, address);
      return this;
    }
    const id = nextListenId++;
    const host = requestedHost(args);
    pendingListens.set(id, (reply) => {
      if (reply.cs === 'listening') return listening({ address: reply.address, family: reply.family, port: reply.port });
      // What a failed bind looks like in plain Node, so the app's own error handling applies.
      st.target = undefined;
      const err = Object.assign(new Error(reply.message), { code: reply.code, syscall: 'listen', port: appPort });
      this.emit('error', err);
    });
    send({ cs: 'listen', id, port: appPort, ...(host !== undefined ? { host } : {}) });
    return this;
  } as typeof net.Server.prototype.listen;
}

/** Called by the preload before the app's entry runs. Idempotent; a no-op outside a cluster-session worker. */
export function installWorker(): void {
  if (st.installed || !managed()) return;
  st.installed = true;
  dc.tracingChannel('net.server.listen').subscribe({
    start() {},
    end() {},
    asyncStart(message: unknown) {
      const server = (message as { server: net.Server }).server;
      adopt(server);
      // In a cluster worker the bind happens in the primary; only 'listening' means connections are accepted.
      if (server.listening) markListening();
      else server.once('listening', markListening);
    },
    asyncEnd() {},
    error() {},
  });
  dc.subscribe('http.server.request.start', onRequest);
  startStats();
  if (stickyMode() || roundRobin()) interceptListen();
  process.on('message', onMessage);
  reportFatalConfigErrors(send);
  // Ctrl-C reaches the whole process group; the primary owns shutdown and drains workers itself.
  process.on('SIGINT', () => {});
}

/**
 * Tells the primary this worker can take traffic. Only needed with `waitReady: true` (apps that warm caches or
 * connections first); otherwise the first `listening` counts. A no-op when not running under cluster-session.
 */
export function ready(): void {
  // Without waitReady the first 'listening' is the signal; an early ready() must not let a reload retire the old
  // worker before this one accepts connections.
  if (waitReady()) markReady();
}

type Listener = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/**
 * Starts serving: `app.listen(port)` in normal mode, takes the connections the primary hands over in sticky mode.
 * Accepts an Express app (any request listener) or an http/https server. Resolves once listening.
 */
export function listen(appOrServer: Listener | net.Server, port?: number): Promise<net.Server> {
  const server = typeof appOrServer === 'function' ? http.createServer(appOrServer) : appOrServer;
  if (!(server instanceof net.Server)) {
    throw new ClusterWorkerError(`listen(): expected an Express app, a request listener or an http(s) server, got ${typeof appOrServer}`);
  }
  const p = port ?? Number(process.env.PORT ?? 3000);
  if (!Number.isInteger(p) || p < 0 || p > 65535) {
    throw new ClusterWorkerError(`listen(): port ${String(port ?? process.env.PORT)} is not a port number; pass 0-65535 or set PORT`);
  }
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
