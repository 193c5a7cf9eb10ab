import type net from 'node:net';
import { acceptEncoding, compressedHead, compressible, Compressor, ENC_NONE, pickEncoding, varyLine, type CompressSink } from './compress.ts';
import { stickyHeaders } from './cookie.ts';
import { clientAddress, forwardHead, hashKey, IDEMPOTENT, trusts } from './forward.ts';
import { BODY_CHUNKED, BODY_LENGTH, BODY_NONE, BODY_UNTIL_CLOSE, BodyFramer, writeMessage, writePieces } from './framing.ts';
import { HEAD_BAD, HEAD_MORE, HEAD_TOO_LARGE, HeadReader } from './head.ts';
import { parseRequestHead, type RequestHead, type ResponseHead } from './http1.ts';
import { errorResponse, type ProxyContext, type Timed } from './context.ts';
import { ProxyCodes } from './errors.ts';
import { OriginConn, type Expect, type IdlePool, type OriginFailure, type OriginHandler } from './origin.ts';
import { ANSWER_FAILURE, ANSWER_RECOVERY, answerVerdict, failureAnswer, NEXT_ABORT, NEXT_FRESH, NEXT_OTHER, onFailure, retryAnswer, type Attempt } from './retry.ts';
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
 * One client connection, and the exchange in progress on it. Requests are handled one after the other
 * (pipelined requests wait in `buf`); each is parsed from raw bytes, sent to an instance chosen by the strategy
 * through an OriginConn, which reports back through the OriginHandler methods, and answered with the instance's
 * answer as it arrives. Retries and ejection follow retry.ts. Answers the balancer writes itself (400, 431,
 * 502, 503, 504...) are small JSON bodies.
 */
export class ClientConn implements Timed, OriginHandler, IdlePool, CompressSink {
  readonly socket: net.Socket;
  deadline: number;
  private readonly ctx: ProxyContext;
  private readonly ip: string;
  private phase = C_IDLE;
  private readonly reader: HeadReader;
  /** Bytes that arrived after the current request (pipelined), kept while it is served. */
  private buf: Buffer | null = null;
  /** Idle between requests: the keep-alive timer runs until the next request's first byte sets its head deadline. */
  private idle = false;
  /** The client half-closed while being answered: requests it already sent are still served, then it is closed. */
  private ended = false;
  private req: RequestHead | null = null;
  private head = '';
  private sticky = '';
  private bodyDone = true;
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
  private lastInvalid = false;
  /** A pooled connection went stale under this request: later attempts use fresh connections only. */
  private freshOnly = false;
  /** reuse 'client': this client's idle instance connections (never lent to another client). */
  private own: OriginConn[] | null = null;
  private insertCookie = false;
  /** What the instance connection must know about the current request (one object, updated per request). */
  private readonly expect: Expect = { head: false, upgrade: '' };
  /** Response bytes (interim or final) went to the client: from here on nothing can be retried. */
  private started = false;
  private closeAfter = false;
  /** compress: the coding the current request accepts (ENC_*), and the compressor of the answer in progress. */
  private accepts = ENC_NONE;
  private compressor: Compressor | null = null;
  /** Metrics (metrics.ts): when the current request's head was parsed, and the last instance it was sent to. */
  private t0 = 0;
  private last: Upstream | null = null;
  /** Access log: the request's id, and the socket's bytesWritten when the request began. */
  private requestId = '';
  private w0 = 0;

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
    const open = ctx.perClient.open(this.ip);
    socket.on('data', (chunk: Buffer) => {
      try {
        this.onSocketData(chunk);
      } catch (err) {
        this.internalError(err);
      }
    });
    socket.on('drain', () => {
      if (this.phase === C_DRAIN) return this.next();
      if (this.compressor !== null) {
        if (this.phase === C_WAIT) this.deadline = 0;
        return this.compressor.resume(); // the instance resumes when the compressor can take more (writable())
      }
      if (this.origin === null) return;
      // The instance was waiting on us: it is the one that may time out again, not this client.
      if (this.phase === C_WAIT) this.deadline = 0;
      this.origin.resume();
    });
    socket.on('end', () => this.onEnd());
    socket.on('error', () => {});
    socket.on('close', () => this.onClose());
    // A trusted proxy carries many clients on its connections: the per-address cap is theirs, not its own.
    if (limits.perClient && open > limits.perClient && (ctx.config.trustedProxies === undefined || !trusts(ctx.config, this.ip))) {
      // One address must not take every slot (nginx limit_conn, HAProxy sc_conn_cur): answered at once.
      ctx.totals.rejected++;
      this.reject(429, ProxyCodes.tooManyConnections, `more than ${limits.perClient} connections from one address`, 1);
    }
  }

  private onSocketData(chunk: Buffer): void {
    switch (this.phase) {
      case C_IDLE:
        return this.readHead(chunk);
      case C_BODY:
        return this.readBody(chunk, 0);
      case C_WAIT:
      case C_DRAIN:
        // A pipelined request: keep it for later, but stop reading if a client floods us.
        this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
        if (this.buf.length > this.ctx.config.limits.headerSize) this.socket.pause();
        return;
      case C_TUNNEL:
        this.deadline = this.ctx.now + this.ctx.config.timeouts.tunnel;
        if (!this.origin!.write([chunk])) this.socket.pause();
        return;
    }
  }

  private readHead(chunk: Buffer): void {
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
    if (this.ctx.metrics || this.ctx.access !== null) {
      this.t0 = performance.now();
      this.w0 = this.socket.bytesWritten;
    }
    this.last = null;
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
    const limiter = this.ctx.limiter;
    if (limiter !== undefined) {
      const wait = limiter.take(clientAddress(req, this.ip, config), this.ctx.now);
      if (wait > 0) {
        this.ctx.totals.rejected++;
        // Pipelined requests behind this one are still read (and limited) after the answer.
        if (this.bodyDone && offset < buf.length) this.buf = buf.subarray(offset);
        return this.reject(429, ProxyCodes.rateLimited, 'too many requests from this address', wait);
      }
    }
    this.replayable = this.bodyDone && IDEMPOTENT.has(req.method);
    // HTTP/1.0 clients cannot read the chunked framing a compressed body needs; HEAD answers carry no body.
    this.accepts = config.compress && req.minor === 1 && req.method !== 'HEAD' ? pickEncoding(acceptEncoding(req.headers)) : ENC_NONE;

    const forward = forwardHead(req, this.ip, config);
    this.head = forward.head;
    this.sticky = forward.sticky;
    this.requestId = forward.requestId;

    this.phase = this.bodyDone ? C_WAIT : C_BODY;
    this.deadline = 0;
    if (offset < buf.length) {
      if (this.bodyDone) this.buf = buf.subarray(offset);
      else this.readBody(buf, offset);
      if (this.phase === C_CLOSED) return;
    }
    if (!this.bodyDone && this.ended) return this.finish(); // its body can never arrive
    // Hold the body until an instance connection is ready, so a refused connection can still go elsewhere.
    if (!this.bodyDone) this.socket.pause();
    this.dispatch();
  }

  private readBody(buf: Buffer, offset: number): void {
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
        if (!this.origin!.write(framer.pieces)) {
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
    const req = this.req!;
    const key = hashKey(req, this.ip, ctx.config);
    const u =
      ctx.selector.choose(ctx.now, key, this.sticky, this.tried) ??
      ctx.selector.choose(ctx.now, key, this.sticky, this.tried, true);
    if (u === undefined) {
      if (this.attempt === 0) {
        ctx.totals.rejected++;
        if (ctx.selector.allBusy(ctx.now)) return this.reject(503, ProxyCodes.noUpstream, 'every instance is at limits.perUpstream', 1);
        return this.reject(503, ProxyCodes.noUpstream, 'no healthy instance available', ctx.retryAfter());
      }
      const answer = failureAnswer(this.lastFailure, this.lastInvalid);
      return this.reject(answer.status, answer.code, answer.reason);
    }
    this.upstream = u;
    this.last = u;
    u.begin(retry);
    this.insertCookie = ctx.config.strategy === 'cookie' && this.sticky !== u.id;
    this.sent = false;
    const expect = this.expect;
    expect.head = req.method === 'HEAD';
    expect.upgrade = req.upgrade;
    const idle = this.freshOnly ? undefined : this.idleFor(u);
    if (idle !== undefined) {
      this.origin = idle;
      idle.use(this, expect);
    } else this.origin = new OriginConn(ctx, u, this, expect);
  }

  private idleFor(u: Upstream): OriginConn | undefined {
    if (this.ctx.config.reuse === 'shared') return u.takeIdle() as OriginConn | undefined;
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

  /** IdlePool (reuse 'client'): one of this client's idle instance connections closed. */
  forget(origin: OriginConn): void {
    const at = this.own?.indexOf(origin) ?? -1;
    if (at !== -1) this.own!.splice(at, 1);
  }

  // OriginHandler: what the instance connection carrying this exchange reports.

  onReady(origin: OriginConn): void {
    const writable = origin.send(this.head, this.pending);
    this.pending = null;
    this.sent = true;
    if (this.phase === C_BODY) {
      this.deadline = this.ctx.now + this.ctx.config.timeouts.clientHeaders;
      if (writable) this.socket.resume();
    }
  }

  onWritable(): void {
    if ((this.phase === C_BODY || this.phase === C_TUNNEL) && this.socket.isPaused()) {
      this.socket.resume();
      if (this.phase === C_BODY) this.deadline = this.ctx.now + this.ctx.config.timeouts.clientHeaders;
    }
  }

  onInterim(head: string): void {
    this.socket.write(`${head}\r\n`, 'latin1');
    this.started = true;
  }

  onHead(res: ResponseHead, body: Buffer[]): boolean {
    const { config } = this.ctx;
    const u = this.upstream!;
    // retryOn first: the common answer costs one set lookup, no allocation.
    if (config.retryOn.has(res.status) && retryAnswer(res.status, config.retryOn, this.attemptState(), () => this.ctx.selector.hasOther(this.ctx.now, this.tried === null ? [u] : [...this.tried, u]))) {
      // Nothing reached the client yet: drop this answer (and its socket, rather than read a body no one wants).
      this.origin!.discard();
      this.origin = null;
      this.upstream = null;
      u.countStatus(res.status);
      if (answerVerdict(res.status) === ANSWER_FAILURE) this.noteFailure(u, `answered ${res.status}`);
      u.release();
      this.attempt++;
      (this.tried ??= []).push(u);
      this.ctx.log(`retrying ${this.req!.method} on another instance after ${u.id} answered ${res.status}`);
      this.dispatch(true);
      return false;
    }
    let head = res.head;
    let compressor: Compressor | null = null;
    // Decided on the instance's head as framing.ts wrote it (its framing line last), before the balancer's additions.
    if (config.compress && res.framing.kind !== BODY_NONE && compressible(res.status, head, res.framing.length)) {
      if (this.accepts !== ENC_NONE) {
        head = compressedHead(head, res.framing.header, this.accepts);
        compressor = this.compressor = new Compressor(this.accepts, res.framing.kind === BODY_CHUNKED, res.framing.length, this);
      } else head += varyLine(head);
    }
    head += this.ctx.addHeaders;
    if (this.insertCookie) head += stickyHeaders(config.cookie.name, u.id, config.cookie.secure);
    // A body ended by closing, or a request body still arriving, means the client connection ends with it.
    if (res.framing.kind === BODY_UNTIL_CLOSE || !this.bodyDone || this.ctx.closing) this.closeAfter = true;
    head += this.closeAfter ? 'Connection: close\r\n\r\n' : '\r\n';
    this.started = true;
    if (compressor !== null) {
      this.written(this.socket.write(head, 'latin1'));
      return compressor.write(body);
    }
    return this.written(writeMessage(this.socket, head, body));
  }

  // CompressSink: the compressor of the current answer.

  write(pieces: Buffer[]): boolean {
    return this.written(writePieces(this.socket, pieces));
  }

  writable(): void {
    this.origin?.resume();
  }

  done(): void {
    this.compressor = null;
    if (this.phase !== C_CLOSED) this.next();
  }

  onData(pieces: Buffer[]): boolean {
    if (this.compressor !== null) return this.compressor.write(pieces);
    if (this.phase === C_TUNNEL) {
      // One idle timer for the tunnel, refreshed by bytes either way (HAProxy's `timeout tunnel`).
      this.deadline = this.ctx.now + this.ctx.config.timeouts.tunnel;
      return writePieces(this.socket, pieces);
    }
    return this.written(writePieces(this.socket, pieces));
  }

  /** After a write of the answer: a client that must drain first is waited for, at most the response timeout. */
  private written(writable: boolean): boolean {
    if (!writable) this.deadline = this.ctx.now + this.ctx.config.timeouts.response;
    return writable;
  }

  onComplete(status: number, reusable: boolean): void {
    const origin = this.origin!;
    const u = this.upstream!;
    const { config } = this.ctx;
    if (reusable) {
      const keep = this.phase !== C_CLOSED && this.bodyDone && u.available(this.ctx.now, true);
      if (keep && config.reuse === 'client' && !this.closeAfter) {
        origin.park(this);
        (this.own ??= []).push(origin);
      } else if (keep && config.reuse === 'shared' && u.park(origin, config.limits.idlePerUpstream)) origin.park(u);
      else origin.destroy();
    }
    u.countStatus(status);
    if (this.ctx.metrics) u.tally.answered(status, (performance.now() - this.t0) / 1000);
    if (this.ctx.access !== null) this.logAccess(status, u);
    // An application 500 on one route must not eject every instance; a good answer brings one back at once.
    const verdict = answerVerdict(status);
    if (verdict === ANSWER_FAILURE) this.noteFailure(u, `answered ${status}`);
    else if (verdict === ANSWER_RECOVERY) u.recovered(this.ctx.now);
    u.release();
    this.origin = null;
    this.upstream = null;
    // A compressed answer is complete once its last chunk is out: done() goes on from there.
    if (this.compressor !== null) return this.compressor.end();
    this.next();
  }

  onUpgrade(head: string, rest: Buffer): void {
    const { config } = this.ctx;
    const u = this.upstream!;
    let out = head;
    if (this.insertCookie) out += stickyHeaders(config.cookie.name, u.id, config.cookie.secure);
    this.socket.cork();
    this.socket.write(`${out}Connection: Upgrade\r\n\r\n`, 'latin1');
    if (rest.length > 0) this.socket.write(rest);
    this.socket.uncork();
    this.phase = C_TUNNEL;
    this.deadline = this.ctx.now + config.timeouts.tunnel;
    this.started = true;
    u.countStatus(101);
    if (this.ctx.metrics) u.tally.answered(101, (performance.now() - this.t0) / 1000);
    if (this.ctx.access !== null) this.logAccess(101, u);
    if (this.buf !== null) {
      this.origin!.write([this.buf]);
      this.buf = null;
    }
    if (this.socket.isPaused()) this.socket.resume();
  }

  onTunnelEnd(): void {
    this.socket.end();
  }

  onError(failure: OriginFailure): void {
    if (failure.internal !== undefined) return this.internalError(failure.internal);
    const u = this.upstream!;
    this.origin = null;
    this.upstream = null;
    if (failure.tunnel) {
      u.release();
      if (this.phase !== C_CLOSED) this.socket.end();
      this.phase = C_CLOSED;
      return;
    }
    const decision = onFailure(failure, this.attemptState());
    if (decision.stale) u.noteStale(failure.reason);
    else this.noteFailure(u, failure.reason);
    // As nginx's "upstream sent invalid header": the operator learns what the instance did wrong.
    if (failure.invalid) this.ctx.log(`instance ${u.id} (${u.url}) sent an invalid response: ${failure.reason}`);
    u.release();
    if (this.phase === C_CLOSED) return;
    this.lastFailure = decision.status;
    this.lastInvalid = failure.invalid;
    switch (decision.next) {
      case NEXT_ABORT:
        return this.abort();
      case NEXT_FRESH:
        this.freshOnly = true; // bounded: a fresh connection cannot be stale
        this.ctx.log(`retrying ${this.req!.method} on a fresh connection after a stale pooled one to ${u.id}: ${failure.reason}`);
        // Not an attempt of the client's request: the stale socket was the balancer's choice.
        return this.dispatch(true);
      case NEXT_OTHER:
        this.attempt++;
        (this.tried ??= []).push(u);
        this.ctx.log(`retrying ${this.req!.method} on another instance after ${u.id} failed: ${failure.reason}`);
        return this.dispatch(true);
      default: {
        const answer = failureAnswer(decision.status, failure.invalid);
        return this.reject(answer.status, answer.code, answer.reason);
      }
    }
  }

  private attemptState(): Attempt {
    return { started: this.started, replayable: this.replayable, attempt: this.attempt, freshOnly: this.freshOnly, retries: this.ctx.config.retries };
  }

  private noteFailure(u: Upstream, reason: string): void {
    const { passive } = this.ctx.config;
    if (u.noteFailure(this.ctx.now, reason, passive)) this.ctx.log(`instance ${u.id} (${u.url}) ejected for ${passive ? passive.cooldown : 0} ms: ${reason}`);
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
      this.readHead(b);
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

  /** An answer of our own. Keeps the connection when the request was read completely, closes it otherwise. */
  private reject(status: number, code: string, reason: string, retryAfter = 0): void {
    const close = !this.bodyDone || this.closeAfter || this.req === null || status === 408 || this.ctx.closing;
    // A head that did not parse took no time at the balancer worth measuring: 0 s.
    if (this.ctx.metrics) (this.last?.tally ?? this.ctx.own).answered(status, this.req === null ? 0 : (performance.now() - this.t0) / 1000);
    const w0 = this.req === null ? this.socket.bytesWritten : this.w0;
    this.socket.write(errorResponse(status, code, reason, close, retryAfter, this.req?.method === 'HEAD'));
    if (this.ctx.access !== null) this.logAccess(status, this.last, w0);
    if (close) return this.finish(); // a client that never reads or never stops sending must not keep the socket
    this.next();
  }

  /** One access-log line for the exchange that just ended (only called while the access log is on). */
  private logAccess(status: number, u: Upstream | null, w0 = this.w0): void {
    const req = this.req;
    const socket = this.socket;
    this.ctx.access!.write({
      client: this.ip,
      method: req?.method ?? '-',
      path: req?.target ?? '-',
      minor: req?.minor ?? 1,
      status,
      bytes: socket.bytesWritten - w0,
      upstream: u === null ? '-' : u.url.slice(7),
      // A head that did not parse took no time at the balancer worth measuring.
      seconds: req === null ? 0 : (performance.now() - this.t0) / 1000,
      requestId: req === null ? '' : this.requestId,
      headers: req?.headers ?? '',
    });
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
    this.origin?.discard();
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
    else if (this.phase === C_TUNNEL) this.origin?.end();
    else if (this.phase === C_IDLE && !this.reader.started) this.socket.end();
    else if (this.phase !== C_CLOSED) this.abort();
  }

  private onClose(): void {
    this.ctx.clients.delete(this);
    this.compressor?.destroy();
    this.compressor = null;
    this.ctx.perClient.close(this.ip);
    const tunnel = this.phase === C_TUNNEL;
    this.phase = C_CLOSED;
    if (this.own !== null) {
      // reuse 'client': these connections were this client's alone and end with it.
      for (const o of this.own.splice(0)) o.destroy();
    }
    const origin = this.origin;
    if (origin !== null) {
      // The client went away before its answer ended: nginx's 499, so the log shows requests that never finished.
      if (this.ctx.access !== null && this.req !== null && !tunnel) this.logAccess(499, this.upstream);
      // Mid-exchange: the instance socket holds half a conversation and cannot be reused.
      origin.discard();
      this.origin = null;
      this.upstream?.release();
      this.upstream = null;
    }
  }
}
