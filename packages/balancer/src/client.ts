import type net from 'node:net';
import { forwardHead, hashKey, IDEMPOTENT } from './forward.ts';
import { BODY_LENGTH, BODY_NONE, BodyFramer, writePieces } from './framing.ts';
import { HEAD_BAD, HEAD_MORE, HEAD_TOO_LARGE, HeadReader } from './head.ts';
import { parseRequestHead, type RequestHead } from './http1.ts';
import { errorResponse, type ProxyContext, type Timed } from './context.ts';
import { ProxyCodes } from './errors.ts';
import { OriginConn } from './origin.ts';
import type { Upstream } from './upstream.ts';

const LINGER_MS = 5_000;
/** Empty lines accepted before a request line (RFC 9112 2.2: some clients end a body with an extra CRLF). */
const MAX_EMPTY_LINES = 16;

const C_IDLE = 0; // waiting for a request head
const C_BODY = 1; // request body still arriving
const C_WAIT = 2; // request complete, response in progress
const C_TUNNEL = 3; // upgraded: bytes flow both ways untouched
const C_CLOSED = 4;
const C_DRAIN = 5; // response written, waiting for the client to read it before taking a pipelined request

const STATUS_CODES: Record<number, string> = { 405: ProxyCodes.methodNotAllowed, 431: ProxyCodes.headersTooLarge, 501: ProxyCodes.notImplemented };

/**
 * One client connection. Requests on it are handled one after the other (pipelined requests wait in `buf`);
 * each is parsed from raw bytes, sent to an instance chosen by the strategy, and answered with the instance's
 * bytes as they arrive. Answers the balancer writes itself (400, 431, 502, 503, 504...) are small JSON bodies.
 */
export class ClientConn implements Timed {
  readonly socket: net.Socket;
  private readonly ctx: ProxyContext;
  private readonly ip: string;
  deadline: number;
  private phase = C_IDLE;
  private readonly reader: HeadReader;
  /** Bytes that arrived after the current request (pipelined), kept while it is served. */
  private buf: Buffer | null = null;
  /** Idle between requests: the keep-alive timer runs until the next request's first byte sets its head deadline. */
  private idle = false;
  /** The client half-closed while being answered: requests it already sent are still served, then it is closed. */
  private ended = false;
  req: RequestHead | null = null;
  private head = '';
  private sticky = '';
  bodyDone = true;
  private bodyBytes = 0;
  private readonly framer = new BodyFramer();
  /** Body bytes read before an instance connection was ready; kept so a never-sent request can go elsewhere. */
  private pending: Buffer[] | null = null;
  private replayable = false;
  private origin: OriginConn | null = null;
  private upstream: Upstream | null = null;
  private sent = false;
  private attempt = 0;
  private tried: Upstream[] | null = null;
  private lastFailure = 502;
  /** A pooled connection went stale under this request: later attempts use fresh connections only. */
  private freshOnly = false;
  /** reuse 'client': this client's idle instance connections (never lent to another client). */
  private own: OriginConn[] | null = null;
  insertCookie = false;
  /** Response bytes (interim or final) went to the client: from here on nothing can be retried. */
  started = false;
  closeAfter = false;

  constructor(ctx: ProxyContext, socket: net.Socket) {
    this.ctx = ctx;
    this.socket = socket;
    const addr = socket.remoteAddress ?? '';
    this.ip = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
    const { limits, timeouts } = ctx.config;
    this.reader = new HeadReader(limits.headerSize, MAX_EMPTY_LINES);
    // The first head must be complete this long after connecting: bytes arriving (a CRLF every few seconds) do
    // not move the deadline, so a trickle cannot hold the connection.
    this.deadline = ctx.now + timeouts.clientHeaders;
    ctx.clients.add(this);
    ctx.totals.connections++;
    const open = (ctx.perClient.get(this.ip) ?? 0) + 1;
    ctx.perClient.set(this.ip, open);
    socket.on('data', (chunk: Buffer) => {
      try {
        this.onData(chunk);
      } catch (err) {
        this.internalError(err);
      }
    });
    socket.on('drain', () => {
      if (this.phase === C_DRAIN) return this.next();
      if (this.origin === null) return;
      // The instance was waiting on us: it is the one that may time out again, not this client.
      if (this.phase === C_WAIT) this.deadline = 0;
      this.origin.resumeFromClient();
    });
    socket.on('end', () => this.onEnd());
    socket.on('error', () => {});
    socket.on('close', () => this.onClose());
    if (limits.perClient && open > limits.perClient) {
      // One address must not take every slot (nginx limit_conn, HAProxy sc_conn_cur): answered at once.
      ctx.totals.rejected++;
      this.reject(429, ProxyCodes.tooManyConnections, `more than ${limits.perClient} connections from one address`, 1);
    }
  }

  private onData(chunk: Buffer): void {
    switch (this.phase) {
      case C_IDLE:
        return this.onHead(chunk);
      case C_BODY:
        return this.onBody(chunk, 0);
      case C_WAIT:
      case C_DRAIN:
        // A pipelined request: keep it for later, but stop reading if a client floods us.
        this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
        if (this.buf.length > this.ctx.config.limits.headerSize) this.socket.pause();
        return;
      case C_TUNNEL:
        this.deadline = this.ctx.now + this.ctx.config.timeouts.tunnel;
        if (!this.origin!.socket.write(chunk)) this.socket.pause();
        return;
    }
  }

  private onHead(chunk: Buffer): void {
    const { limits, timeouts } = this.ctx.config;
    if (this.idle) {
      // The next request's first byte: its head deadline is set now, once.
      this.idle = false;
      this.deadline = this.ctx.now + timeouts.clientHeaders;
    }
    const reader = this.reader;
    const r = reader.feed(chunk);
    if (r === HEAD_MORE) {
      if (this.ended) this.finish(); // a truncated last request: nothing more can come
      return;
    }
    if (r === HEAD_TOO_LARGE) return this.reject(431, ProxyCodes.headersTooLarge, `request head larger than ${limits.headerSize} bytes`);
    if (r === HEAD_BAD) return this.reject(400, ProxyCodes.badRequest, reader.error);
    const parsed = parseRequestHead(reader.head, limits.headerCount);
    if ('reason' in parsed) return this.reject(parsed.status, STATUS_CODES[parsed.status] ?? ProxyCodes.badRequest, parsed.reason);
    const { data, offset } = reader;
    reader.reset();
    this.start(parsed, data, offset);
  }

  private start(req: RequestHead, buf: Buffer, offset: number): void {
    const { config } = this.ctx;
    this.ctx.totals.requests++;
    this.req = req;
    this.started = false;
    this.sent = false;
    this.attempt = 0;
    this.tried = null;
    this.freshOnly = false;
    this.pending = null;
    this.closeAfter = !req.keepAlive;
    this.bodyBytes = 0;
    this.framer.begin(req.framing);
    // Until the body is read, whatever answer comes, this connection cannot go on.
    this.bodyDone = req.framing.kind === BODY_NONE;
    if (req.framing.kind === BODY_LENGTH && config.limits.bodySize && req.framing.length > config.limits.bodySize) {
      return this.reject(413, ProxyCodes.bodyTooLarge, `request body larger than ${config.limits.bodySize} bytes`);
    }
    this.replayable = this.bodyDone && IDEMPOTENT.has(req.method);

    const forward = forwardHead(req, this.ip, config);
    this.head = forward.head;
    this.sticky = forward.sticky;

    this.phase = this.bodyDone ? C_WAIT : C_BODY;
    this.deadline = 0;
    if (offset < buf.length) {
      if (this.bodyDone) this.buf = buf.subarray(offset);
      else this.onBody(buf, offset);
      if (this.phase === C_CLOSED) return;
    }
    if (!this.bodyDone && this.ended) return this.finish(); // its body can never arrive
    // Hold the body until an instance connection is ready, so a refused connection can still go elsewhere.
    if (!this.bodyDone) this.socket.pause();
    this.dispatch();
  }

  private onBody(buf: Buffer, offset: number): void {
    const framer = this.framer;
    const r = framer.advance(buf, offset, buf.length);
    if (r === -2) return this.bodyError(400, ProxyCodes.badRequest, `invalid chunked request body: ${framer.error}`);
    const done = r >= 0;
    const end = done ? r : buf.length;
    const limit = this.ctx.config.limits.bodySize;
    this.bodyBytes += end - offset;
    if (limit && this.bodyBytes > limit) return this.bodyError(413, ProxyCodes.bodyTooLarge, `request body larger than ${limit} bytes`);
    // Only what the framer validated and re-framed goes on: never the client's own framing bytes.
    if (framer.pieces.length > 0) {
      if (this.sent) {
        const origin = this.origin!;
        origin.deadline = this.ctx.now + this.ctx.config.timeouts.response;
        if (!writePieces(origin.socket, framer.pieces)) {
          // Waiting on the instance now: its timeout runs, ours stops until it drains.
          this.socket.pause();
          this.deadline = 0;
        } else if (!done) this.deadline = this.ctx.now + this.ctx.config.timeouts.clientHeaders;
      } else (this.pending ??= []).push(...framer.pieces);
    }
    if (!done) return;
    this.bodyDone = true;
    this.deadline = 0;
    if (this.phase === C_BODY) this.phase = C_WAIT;
    if (end < buf.length) this.buf = buf.subarray(end);
  }

  private bodyError(status: number, code: string, reason: string): void {
    if (this.started || this.sent) return this.abort();
    this.reject(status, code, reason);
  }

  /** Picks an instance and sends the request, or answers 503 at once when none is available. */
  private dispatch(retry = false): void {
    const ctx = this.ctx;
    const key = hashKey(this.req!, this.ip, ctx.config);
    const u =
      ctx.selector.choose(ctx.now, key, this.sticky, this.tried) ??
      ctx.selector.choose(ctx.now, key, this.sticky, this.tried, true);
    if (u === undefined) {
      if (this.attempt === 0) {
        ctx.totals.rejected++;
        if (ctx.selector.allBusy(ctx.now)) return this.reject(503, ProxyCodes.noUpstream, 'every instance is at limits.perUpstream', 1);
        return this.reject(503, ProxyCodes.noUpstream, 'no healthy instance available', ctx.retryAfter());
      }
      const timeout = this.lastFailure === 504;
      return this.reject(
        this.lastFailure,
        timeout ? ProxyCodes.gatewayTimeout : ProxyCodes.badGateway,
        timeout ? 'the instance did not answer in time' : 'the instance failed before answering',
      );
    }
    this.upstream = u;
    u.active++;
    u.requests++;
    if (retry) u.retries++;
    this.insertCookie = ctx.config.strategy === 'cookie' && this.sticky !== u.id;
    this.sent = false;
    const idle = this.freshOnly ? undefined : this.idleFor(u);
    if (idle !== undefined) {
      this.origin = idle;
      this.attach(idle);
    } else {
      this.origin = new OriginConn(ctx, u, this);
    }
  }

  private idleFor(u: Upstream): OriginConn | undefined {
    if (this.ctx.config.reuse === 'shared') return u.idle.pop() as OriginConn | undefined;
    const own = this.own;
    if (own === null) return undefined;
    for (let i = own.length - 1; i >= 0; i--) {
      const o = own[i]!;
      if (o.upstream === u) {
        own.splice(i, 1);
        return o;
      }
    }
    return undefined;
  }

  /** reuse 'client': an instance connection finished an exchange and waits for this client's next request. */
  keepOrigin(origin: OriginConn): void {
    if (this.phase === C_CLOSED) {
      origin.destroy();
      return;
    }
    (this.own ??= []).push(origin);
  }

  /** One of this client's instance connections closed. */
  forgetOrigin(origin: OriginConn): void {
    const at = this.own?.indexOf(origin) ?? -1;
    if (at !== -1) this.own!.splice(at, 1);
  }

  /** The instance connection is ready: write the head and whatever body has arrived. */
  attach(origin: OriginConn): void {
    origin.expect(this);
    const s = origin.socket;
    if (this.pending === null) s.write(this.head, 'latin1');
    else {
      s.cork();
      s.write(this.head, 'latin1');
      for (const part of this.pending) s.write(part);
      s.uncork();
      this.pending = null;
    }
    this.sent = true;
    if (this.phase === C_BODY) {
      this.deadline = this.ctx.now + this.ctx.config.timeouts.clientHeaders;
      if (!s.writableNeedDrain) this.socket.resume();
    }
  }

  /** The instance socket drained: read more of the request body (or tunnel bytes). */
  resumeFromOrigin(): void {
    if ((this.phase === C_BODY || this.phase === C_TUNNEL) && this.socket.isPaused()) {
      this.socket.resume();
      if (this.phase === C_BODY) this.deadline = this.ctx.now + this.ctx.config.timeouts.clientHeaders;
    }
  }

  /** The response ended cleanly (its socket already went back to the pool or was closed). */
  responseDone(status: number): void {
    const u = this.upstream!;
    u.countStatus(status);
    // 502/503/504 from an instance mean it cannot serve (overloaded, its own upstream down); an application 500
    // on one route must not eject every instance.
    if (status >= 502 && status <= 504) this.noteFailure(u, `answered ${status}`);
    // Ejected, but this answer was good: it is back (it got the request as a last resort, all being ejected).
    else if (status < 500 && u.downUntil > this.ctx.now) u.downUntil = 0;
    u.release();
    this.origin = null;
    this.upstream = null;
    this.next();
  }

  private noteFailure(u: Upstream, reason: string): void {
    if (u.noteFailure(this.ctx.now, reason, this.ctx.config.passive)) {
      this.ctx.log(`instance ${u.id} (${u.url}) ejected for ${this.ctx.config.passive ? this.ctx.config.passive.cooldown : 0} ms: ${reason}`);
    }
  }

  /** Ready for the next request on this connection, or close it. */
  private next(): void {
    this.req = null;
    this.tried = null;
    if (this.closeAfter || !this.bodyDone || this.ctx.closing || (this.ended && this.buf === null)) return this.finish();
    if (this.socket.writableNeedDrain) {
      // Back-pressure across pipelined requests: the next one waits until the client reads what it was sent, or
      // a client that never reads would have every request it pipelined forwarded and buffered (HAProxy and
      // nginx also stop there). Waiting on the client is bounded by the response timeout.
      this.phase = C_DRAIN;
      this.socket.pause();
      this.deadline = this.ctx.now + this.ctx.config.timeouts.response;
      return;
    }
    this.phase = C_IDLE;
    this.idle = true;
    this.deadline = this.ctx.now + this.ctx.config.timeouts.keepAlive;
    if (this.socket.isPaused()) this.socket.resume();
    if (this.buf !== null) {
      const b = this.buf;
      this.buf = null;
      this.onHead(b);
    }
  }

  /**
   * Lingering close (as nginx): keep reading and dropping what the client still sends, so it can read the answers
   * written so far instead of getting a reset; but not for ever.
   */
  private finish(): void {
    this.phase = C_CLOSED;
    this.deadline = this.ctx.now + LINGER_MS;
    this.socket.end();
  }

  /** The instance failed before any response byte reached the client: retry when safe, else 502/504. */
  originFailed(origin: OriginConn, reason: string, timedOut: boolean): void {
    const u = origin.upstream;
    this.origin = null;
    this.upstream = null;
    // A pooled connection that fails before any answer byte (reset, EPIPE, close) most likely went stale: the
    // instance (or the worker holding it) closed it as we reused it. That says nothing about the instance, so it
    // does not count toward ejection, and the request gets one more try on a fresh connection. A timeout does.
    const stale = origin.reused && origin.received === 0 && !timedOut;
    if (stale) u.lastError = `stale pooled connection: ${reason}`;
    else this.noteFailure(u, reason);
    // As nginx's "upstream sent invalid header": the operator learns what the instance did wrong.
    if (origin.invalidResponse) this.ctx.log(`instance ${u.id} (${u.url}) sent an invalid response: ${reason}`);
    u.release();
    if (this.phase === C_CLOSED) return;
    if (this.started) return this.abort();
    // Never connected: nothing was sent, any method may go elsewhere. Sent: only idempotent requests without
    // a body, and only while no response byte came back.
    const safe = !origin.connected || (this.replayable && origin.received === 0);
    this.lastFailure = timedOut ? 504 : 502;
    if (safe && stale && !this.freshOnly) {
      this.freshOnly = true; // bounded: a fresh connection cannot be stale
      this.ctx.log(`retrying ${this.req!.method} on a fresh connection after a stale pooled one to ${u.id}: ${reason}`);
      // Not an attempt of the client's request: the stale socket was the balancer's choice.
      return this.dispatch(true);
    }
    if (safe && this.attempt < this.ctx.config.retries) {
      this.attempt++;
      (this.tried ??= []).push(u);
      this.ctx.log(`retrying ${this.req!.method} on another instance after ${u.id} failed: ${reason}`);
      return this.dispatch(true);
    }
    this.reject(
      this.lastFailure,
      timedOut ? ProxyCodes.gatewayTimeout : ProxyCodes.badGateway,
      timedOut ? 'the instance did not answer in time' : origin.invalidResponse ? 'the instance sent an invalid response' : 'the instance failed before answering',
    );
  }

  /**
   * The instance answered with a status in `retryOn` (its primary had no worker ready, it is overloaded...):
   * worth another instance when nothing reached the client yet, the request can be replayed, an attempt remains
   * and some other instance could take it. Otherwise the answer is passed through as it is.
   */
  retryableAnswer(status: number): boolean {
    const ctx = this.ctx;
    if (!ctx.config.retryOn.has(status) || this.started || !this.replayable || this.attempt >= ctx.config.retries) return false;
    const tried = this.tried === null ? [this.upstream!] : [...this.tried, this.upstream!];
    return ctx.selector.hasOther(ctx.now, tried);
  }

  /** The answer checked by retryableAnswer() was dropped with its socket: count it and try another instance. */
  retryAnswer(origin: OriginConn, status: number): void {
    const u = origin.upstream;
    this.origin = null;
    this.upstream = null;
    u.countStatus(status);
    if (status >= 502 && status <= 504) this.noteFailure(u, `answered ${status}`);
    u.release();
    this.attempt++;
    (this.tried ??= []).push(u);
    this.ctx.log(`retrying ${this.req!.method} on another instance after ${u.id} answered ${status}`);
    this.dispatch(true);
  }

  startTunnel(origin: OriginConn): void {
    this.phase = C_TUNNEL;
    // One idle timer for the tunnel, refreshed by bytes either way (HAProxy's `timeout tunnel`).
    this.deadline = this.ctx.now + this.ctx.config.timeouts.tunnel;
    this.started = true;
    origin.upstream.countStatus(101);
    if (this.buf !== null) {
      origin.socket.write(this.buf);
      this.buf = null;
    }
    if (this.socket.isPaused()) this.socket.resume();
  }

  tunnelClosed(): void {
    const u = this.upstream;
    this.upstream = null;
    this.origin = null;
    u?.release();
    if (this.phase !== C_CLOSED) this.socket.end();
    this.phase = C_CLOSED;
  }

  /** An answer of our own. Keeps the connection when the request was read completely, closes it otherwise. */
  private reject(status: number, code: string, reason: string, retryAfter = 0): void {
    const close = !this.bodyDone || this.closeAfter || this.req === null || status === 408 || this.ctx.closing;
    this.socket.write(errorResponse(status, code, reason, close, retryAfter, this.req?.method === 'HEAD'));
    if (close) return this.finish(); // a client that never reads or never stops sending must not keep the socket
    this.next();
  }

  private abort(): void {
    this.phase = C_CLOSED;
    this.socket.destroy();
  }

  destroy(): void {
    this.abort();
  }

  /** Nothing in flight that a graceful stop should wait for: idle between requests, or a tunnel. */
  closableNow(): boolean {
    return this.phase === C_IDLE || this.phase === C_TUNNEL || this.phase === C_CLOSED;
  }

  /** A bug must cost one connection, never the process and every other client with it. */
  internalError(err: unknown): void {
    this.ctx.log(`internal error, connection closed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    this.origin?.destroy();
    this.abort();
  }

  onTimeout(): void {
    // Some bytes of a head (empty lines included) but not all of it in time: 408. Nothing at all: a polite FIN,
    // so a client racing a new request on an idle keep-alive connection sees a clean close it may retry on.
    if (this.phase === C_IDLE) {
      if (this.reader.started) return this.reject(408, ProxyCodes.requestTimeout, 'request head not received in time');
      return this.finish();
    }
    if (this.phase === C_BODY && !this.sent) return this.reject(408, ProxyCodes.requestTimeout, 'request body not received in time');
    this.abort();
  }

  private onEnd(): void {
    if (this.phase === C_WAIT || this.phase === C_DRAIN) this.ended = true;
    else if (this.phase === C_TUNNEL) this.origin?.socket.end();
    else if (this.phase === C_IDLE && !this.reader.started) this.socket.end();
    else if (this.phase !== C_CLOSED) this.abort();
  }

  private onClose(): void {
    this.ctx.clients.delete(this);
    const open = this.ctx.perClient.get(this.ip)! - 1;
    if (open === 0) this.ctx.perClient.delete(this.ip);
    else this.ctx.perClient.set(this.ip, open);
    this.phase = C_CLOSED;
    if (this.own !== null) {
      // reuse 'client': these connections were this client's alone and end with it.
      for (const o of this.own.splice(0)) o.destroy();
    }
    const origin = this.origin;
    if (origin !== null) {
      // Mid-exchange: the instance socket holds half a conversation and cannot be reused.
      origin.client = null;
      origin.socket.destroy();
      this.origin = null;
      this.upstream?.release();
      this.upstream = null;
    }
  }
}
