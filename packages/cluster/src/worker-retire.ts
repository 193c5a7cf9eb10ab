import type http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { ACCEPT_WINDOW_MS, ACK_MARGIN_MS, monotonicMs, type ToPrimary } from './protocol.ts';
import { requestDone } from './worker-stats.ts';
import { send, st, type Conn } from './worker-state.ts';

/**
 * A worker's connections and its retirement: every connection of the app's servers is tracked with its requests
 * in flight; a retiring worker gives idle keep-alive connections back to the primary (another worker carries
 * them on) or, when none can take them, tells clients `Connection: close` and closes what stays idle.
 */

/**
 * How long a keep-alive connection that cannot move (stop, TLS, a pipelining client) must sit idle after
 * retirement began before it is closed. Closing an idle connection races with a client that is just sending on
 * it; a grace lets busy clients get their answer (with `Connection: close`) instead.
 */
const IDLE_GRACE_MS = 500;

/** What lives on a net.Socket but is not in its types: the TCP handle and, while http owns the socket, its parser. */
interface RawSocket extends net.Socket {
  _handle?: { readStart(): number; readStop(): number } | null;
  parser?: unknown;
}

export function adopt(server: net.Server): void {
  if (st.servers.has(server)) return;
  st.servers.add(server);
  server.on(server instanceof tls.Server ? 'secureConnection' : 'connection', track);
}

export function track(socket: net.Socket): Conn {
  let conn = st.sockets.get(socket);
  if (conn) return conn;
  conn = { inFlight: 0, idleSince: Date.now(), readAtIdle: 0, key: undefined, moving: false, stay: false, last: undefined };
  st.sockets.set(socket, conn);
  socket.once('close', () => {
    st.sockets.delete(socket);
    checkDrained();
  });
  return conn;
}

interface RequestStart {
  request: http.IncomingMessage;
  response: http.ServerResponse;
  socket: net.Socket;
  server: net.Server;
}

/**
 * Every request passes here (http.server.request.start), so this path stays small: what retirement needs from a
 * request that began before it (requests in flight, the newest answer, the bytes read when the answer ended) and
 * the status figures. Everything else happens only once the worker is retiring.
 */
export function onRequest(message: unknown): void {
  const { response, socket, server } = message as RequestStart;
  st.requests++;
  // Servers are adopted when they listen; a connection of one that was not is tracked from its first request.
  const conn = st.sockets.get(socket) ?? (adopt(server), track(socket));
  // A request read before the previous answer ended: a pipelining client. What it sends next may sit half-parsed
  // in this process at any time, so its connection is never moved.
  if (conn.inFlight++ > 0) conn.stay = true;
  const previous = conn.last;
  conn.last = response;
  if (st.retiring && !movable(socket as RawSocket, conn)) {
    // The close moves to the newest answer: Node drops pipelined requests queued behind a `close` answer.
    if (previous && closing.has(previous) && !previous.headersSent) previous.removeHeader('connection');
    sayClose(conn);
  }
  const t0 = performance.now();
  response.once('close', () => answered(socket as RawSocket, conn, response, t0));
}

function answered(socket: RawSocket, conn: Conn, response: http.ServerResponse, t0: number): void {
  conn.inFlight--;
  conn.readAtIdle = socket.bytesRead;
  if (conn.last === response) conn.last = undefined;
  requestDone(response.writableFinished ? response.statusCode : 499, performance.now() - t0);
  if (!st.retiring) return;
  // Before retirement began, a connection's idle time counts from then (the grace), so only now is it kept.
  conn.idleSince = Date.now();
  tryMove(socket, conn);
}

/**
 * Whether a retiring worker may give this connection to another: a plain TCP socket still owned by the http
 * server (not TLS, whose session state lives here; not upgraded to another protocol).
 */
function movable(socket: RawSocket, conn: Conn): boolean {
  return st.moving && !conn.stay && !(socket instanceof tls.TLSSocket) && Boolean(socket.parser) && Boolean(socket._handle);
}

/** Answers this module asked to close (not the app), so the close can move to a newer pipelined answer. */
const closing = new WeakSet<http.ServerResponse>();

/** Keep-alive clients learn the worker is leaving from this header on the last answer, and reconnect elsewhere. */
function sayClose(conn: Conn): void {
  const res = conn.last;
  if (!res || res.headersSent) return;
  res.setHeader('connection', 'close');
  closing.add(res);
}

const pendingMoves = new Map<number, (taken: boolean) => void>();
let nextMoveId = 1;

/** The primary's answer to a `move`. */
export function moved(id: number, taken: boolean): void {
  pendingMoves.get(id)?.(taken);
}

/**
 * Gives an idle keep-alive connection back to the primary, which deals it to a ready worker: the client keeps
 * its connection through the reload, and no close can race a request it is sending. Only at a request boundary
 * with nothing unread in this process: reading stops first, so whatever the client sends next stays in the
 * kernel and travels with the descriptor. Unless the primary takes it within the window, reading resumes here.
 */
function tryMove(socket: RawSocket, conn: Conn): void {
  if (conn.moving || conn.inFlight > 0 || socket.destroyed || !movable(socket, conn)) return;
  // The answer's last bytes are still in this process: retried by the sweep once they are in the kernel.
  if (socket.writableLength > 0 || !socket.writable) return;
  // The parser holds part of the next request (or a body the app left unread): it cannot travel.
  if (socket.bytesRead !== conn.readAtIdle || socket.readableLength > 0) {
    conn.stay = true;
    return;
  }
  const handle = socket._handle!;
  handle.readStop();
  conn.moving = true;
  const id = nextMoveId++;
  const settle = (taken: boolean) => {
    if (!pendingMoves.delete(id)) return;
    clearTimeout(timer);
    conn.moving = false;
    // Taken: the primary holds its own descriptor, so closing this one sends nothing to the client.
    if (taken) return void socket.destroy();
    conn.stay = true;
    if (!socket.destroyed) handle.readStart();
  };
  pendingMoves.set(id, settle);
  const timer = setTimeout(() => settle(false), ACCEPT_WINDOW_MS + ACK_MARGIN_MS);
  const msg: ToPrimary = { cs: 'move', id, by: monotonicMs() + ACCEPT_WINDOW_MS, port: socket.localPort ?? 0, ...(conn.key !== undefined ? { key: conn.key } : {}) };
  if (!process.connected) return settle(false);
  // The raw handle, not the socket: a net.Socket would be read from by the primary as soon as it arrives.
  process.send!(msg, handle as never, { keepOpen: true }, (err: Error | null) => err && settle(false));
}

export function retire(move: boolean): void {
  if (st.retiring) return;
  st.retiring = true;
  st.moving = move;
  st.retiredAt = Date.now();
  for (const server of st.servers) {
    // net's close, not http's: http.Server#close also drops idle keep-alive sockets at once, which races with
    // clients sending on them; they are moved, or closed by the sweep below after a grace.
    if (server !== st.target && server.listening) net.Server.prototype.close.call(server);
  }
  for (const [socket, conn] of st.sockets) {
    if (conn.inFlight > 0 && !movable(socket as RawSocket, conn)) sayClose(conn);
    else tryMove(socket as RawSocket, conn);
  }
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [socket, conn] of st.sockets) {
      if (conn.inFlight > 0 || conn.moving) continue;
      if (movable(socket as RawSocket, conn)) {
        tryMove(socket as RawSocket, conn);
        continue;
      }
      if (socket.writableLength > 0 || now - Math.max(conn.idleSince, st.retiredAt) < IDLE_GRACE_MS) continue;
      // Timers run before the poll phase: a request already waiting in the kernel is read only after this
      // callback. Close after that phase, unless it brought a request (or bytes of one).
      const read = socket.bytesRead;
      setImmediate(() => {
        if (conn.inFlight === 0 && !conn.moving && socket.bytesRead === read) socket.destroy();
      });
    }
    if (checkDrained()) clearInterval(sweep);
  }, 50);
  sweep.unref();
  checkDrained();
}

function checkDrained(): boolean {
  if (!st.retiring) return false;
  if (st.drainedSent) return true;
  if (st.sockets.size > 0) return false;
  st.drainedSent = true;
  send({ cs: 'drained' });
  return true;
}

/** The app's server listening on `port` through node:cluster: where a connection moved to that port goes. */
export function serverOn(port: number): net.Server | undefined {
  for (const server of st.servers) {
    if (server instanceof tls.Server || !server.listening) continue;
    const address = server.address();
    if (typeof address === 'object' && address?.port === port) return server;
  }
  return undefined;
}

