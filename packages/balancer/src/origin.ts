import net from 'node:net';
import { BODY_UNTIL_CLOSE, BodyFramer, writePieces } from './framing.ts';
import { HEAD_DONE, HEAD_MORE, HEAD_TOO_LARGE, HeadReader } from './head.ts';
import { parseResponseHead, type ResponseHead } from './http1.ts';
import type { ProxyContext, Timed } from './context.ts';
import type { Failure } from './retry.ts';
import { listHas } from './syntax.ts';
import type { Upstream } from './upstream.ts';

const MAX_RESPONSE_HEAD = 65_536;

/**
 * The one buffer every instance connection of this thread reads into (net's `onread`), in place of the stream's
 * default of a fresh 64 KiB allocation, shrunk, per read, pushed through the Readable machinery and emitted as
 * 'data'. Reads are synchronous and one at a time on the thread, and onRead() copies each read out before it
 * returns, so nothing ever holds a view of this buffer.
 */
const READ_BUFFER = Buffer.allocUnsafe(65_536);

const O_IDLE = 0;
const O_HEAD = 1;
const O_BODY = 2;
const O_TUNNEL = 3;

/** What the request being answered needs the instance connection to know about it. */
export interface Expect {
  /** A HEAD request: the answer has no body, whatever it announces. */
  head: boolean;
  /** The protocol asked for in a WebSocket handshake, '' for none: a 101 must name it. */
  upgrade: string;
}

export type OriginFailure = Failure & {
  reason: string;
  /** The connection was a tunnel (after a 101): its end is the tunnel's end, not a failed exchange. */
  tunnel: boolean;
  /** A bug in the balancer, caught: costs this exchange only. */
  internal?: unknown;
};

/**
 * What an instance connection reports to the exchange it carries, in undici's dispatch-handler style: the
 * connection owns its socket, head reader, framing and deadline; the request side (client.ts) owns the client
 * socket and every decision about the request. Neither writes the other's fields.
 */
export interface OriginHandler {
  /** Connected, or taken from an idle pool: the request may be written (send()). */
  onReady(origin: OriginConn): void;
  /** The instance socket drained: more of the request body may be written. */
  onWritable(): void;
  /** An interim answer (100, 103...): status line and fields, without the final empty line. */
  onInterim(head: string): void;
  /**
   * The final answer: head re-serialised (framing written by the balancer; no Connection, no final empty line)
   * and the body bytes that came with it, validated. Return false when the client cannot take more now: the
   * instance is not read until resume(). The handler may call discard() instead, to send the request elsewhere.
   */
  onHead(res: ResponseHead, body: Buffer[]): boolean;
  /** More of the body; after onUpgrade, tunnel bytes. Return false as for onHead. */
  onData(pieces: Buffer[]): boolean;
  /** The answer ended cleanly; `reusable`: the connection may carry another exchange (park() it, or destroy()). */
  onComplete(status: number, reusable: boolean): void;
  /** A 101 for the handshake: the connection is a tunnel from here; `rest` came with the head. */
  onUpgrade(head: string, rest: Buffer): void;
  /** The instance half-closed the tunnel. */
  onTunnelEnd(): void;
  /** The connection failed (or, as a tunnel, closed) before the exchange completed. */
  onError(failure: OriginFailure): void;
}

/** Where an idle connection waits; told when one closes while waiting. */
export interface IdlePool {
  forget(origin: OriginConn): void;
}

/**
 * One keep-alive connection to an instance. It carries one exchange at a time (no pipelining: a slow response
 * must not hold up the next request) and waits in an idle pool between exchanges. Only heads are parsed; bodies
 * pass through the framer (validated, framing re-written), never decoded.
 */
export class OriginConn implements Timed {
  readonly upstream: Upstream;
  deadline: number;
  private readonly socket: net.Socket;
  private readonly ctx: ProxyContext;
  private handler: OriginHandler | null;
  private expect: Expect;
  private phase = O_HEAD;
  private readonly reader = new HeadReader(MAX_RESPONSE_HEAD, 0);
  private readonly framer = new BodyFramer();
  private connected = false;
  /** Taken from an idle pool: it served an earlier request, so a failure before any answer may only mean stale. */
  private reused = false;
  private pool: IdlePool | null = null;
  /** Bytes of the current answer received so far: 0 means the request may be replayed elsewhere. */
  private received = 0;
  private status = 0;
  private reusable = true;
  /** How long the instance said it keeps this connection open when idle (Keep-Alive: timeout=N); 0 unknown. */
  private keepAliveMs = 0;
  private error = '';
  private invalid = false;
  private timedOut = false;

  constructor(ctx: ProxyContext, upstream: Upstream, handler: OriginHandler, expect: Expect) {
    this.ctx = ctx;
    this.upstream = upstream;
    this.handler = handler;
    this.expect = expect;
    this.deadline = ctx.now + ctx.config.timeouts.connect;
    const onread = { buffer: READ_BUFFER, callback: (n: number, buf: Buffer) => this.onRead(n, buf) };
    const socket = net.connect({ host: upstream.host, port: upstream.port, noDelay: true, allowHalfOpen: true, onread });
    this.socket = socket;
    ctx.origins.add(this);
    socket.on('connect', () => {
      this.connected = true;
      this.deadline = this.ctx.now + this.ctx.config.timeouts.response;
      this.handler?.onReady(this);
    });
    socket.on('drain', () => {
      if (this.phase !== O_IDLE) this.handler?.onWritable();
    });
    socket.on('end', () => this.onEnd());
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.error ||= err.code ?? err.message;
    });
    socket.on('close', () => this.onClose());
  }

  /** An idle pooled connection takes the next exchange. */
  use(handler: OriginHandler, expect: Expect): void {
    this.pool = null;
    this.handler = handler;
    this.expect = expect;
    this.phase = O_HEAD;
    this.received = 0;
    this.reader.reset();
    this.deadline = this.ctx.now + this.ctx.config.timeouts.response;
    if (this.socket.isPaused()) this.socket.resume();
    handler.onReady(this);
  }

  /** Writes the request head and the body read so far; false when the instance must drain first. */
  send(head: string, body: Buffer[] | null): boolean {
    this.deadline = this.ctx.now + this.ctx.config.timeouts.response;
    if (body === null) return this.socket.write(head, 'latin1');
    this.socket.cork();
    this.socket.write(head, 'latin1');
    for (const piece of body) this.socket.write(piece);
    this.socket.uncork();
    return !this.socket.writableNeedDrain;
  }

  /** More request body (or tunnel bytes); false when the instance must drain first. */
  write(pieces: Buffer[]): boolean {
    if (this.phase !== O_TUNNEL) this.deadline = this.ctx.now + this.ctx.config.timeouts.response;
    return writePieces(this.socket, pieces);
  }

  /** The client half-closed the tunnel. */
  end(): void {
    this.socket.end();
  }

  /** The client drained what it was given: read on from the instance. */
  resume(): void {
    if (!this.socket.isPaused()) return;
    this.socket.resume();
    if (this.phase === O_BODY) this.deadline = this.ctx.now + this.ctx.config.timeouts.response;
  }

  /** Drops the exchange and the connection, without another word to the handler (a retry, or the client left). */
  discard(): void {
    this.handler = null;
    this.socket.destroy();
  }

  /** Waits in `pool` for the next exchange, until the instance would close it. */
  park(pool: IdlePool): void {
    this.phase = O_IDLE;
    this.pool = pool;
    this.reused = true;
    this.deadline = this.ctx.now + this.idleMs();
    if (this.socket.isPaused()) this.socket.resume();
  }

  /** Closes the connection (idle, or the instance is drained, removed or ejected). */
  destroy(): void {
    this.socket.destroy();
  }

  /** Given up a second before the instance would close it, so it is never reused as it closes. */
  private idleMs(): number {
    const idle = this.ctx.config.timeouts.upstreamIdle;
    return this.keepAliveMs > 0 ? Math.min(idle, this.keepAliveMs - 1000) : idle;
  }

  onTimeout(): void {
    if (this.phase === O_IDLE || this.handler === null) {
      this.socket.destroy();
      return;
    }
    this.timedOut = true;
    this.error ||= this.connected ? 'response timeout' : 'connect timeout';
    this.socket.destroy();
  }

  /** net's onread callback: one read, in READ_BUFFER. What is handed on is a copy (small ones from Buffer's pool). */
  private onRead(n: number, buf: Buffer): boolean {
    const chunk = Buffer.allocUnsafe(n);
    buf.copy(chunk, 0, 0, n);
    try {
      this.onData(chunk);
    } catch (err) {
      this.fail(`internal error: ${err instanceof Error ? err.message : String(err)}`, err);
    }
    return true; // pausing is explicit (socket.pause()), as with 'data'
  }

  private onData(chunk: Buffer): void {
    const handler = this.handler;
    if (handler === null || this.phase === O_IDLE) {
      // Bytes on an idle socket are a protocol error by the instance: never hand this socket out again.
      this.socket.destroy();
      return;
    }
    if (this.phase === O_TUNNEL) {
      if (!handler.onData([chunk])) this.socket.pause();
      return;
    }
    this.received += chunk.length;
    this.deadline = this.ctx.now + this.ctx.config.timeouts.response;
    if (this.phase === O_BODY) return this.body(handler, chunk, 0, null);
    const reader = this.reader;
    const r = reader.feed(chunk);
    if (r === HEAD_MORE) return;
    if (r !== HEAD_DONE) return this.protocolError(r === HEAD_TOO_LARGE ? 'response head too large' : `invalid response head: ${reader.error}`);
    const res = parseResponseHead(reader.head, this.expect.head);
    const { data: buf, offset } = reader;
    reader.reset();
    if (typeof res === 'string') return this.protocolError(`invalid response head: ${res}`);
    if (res.status < 200) {
      if (res.status === 101 && this.expect.upgrade && listHas(res.upgrade, this.expect.upgrade)) {
        this.phase = O_TUNNEL;
        this.deadline = 0; // the tunnel has one idle timer, the client's
        this.reusable = false;
        return handler.onUpgrade(res.head, offset < buf.length ? buf.subarray(offset) : Buffer.alloc(0));
      }
      if (res.status === 101) return this.protocolError('101 without a matching upgrade request');
      handler.onInterim(res.head);
      if (offset < buf.length && this.handler === handler) this.onData(buf.subarray(offset));
      return;
    }
    this.status = res.status;
    this.framer.begin(res.framing);
    this.reusable = !res.close && res.framing.kind !== BODY_UNTIL_CLOSE && !this.expect.upgrade && !res.noReuse;
    this.keepAliveMs = res.keepAliveMs;
    this.phase = O_BODY;
    this.body(handler, buf, offset, res);
  }

  /**
   * Frames buf[offset..] and hands it on, with the head when this is the first part. The first part is framed
   * before the handler sees anything, so an answer whose framing breaks there is still a clean 502.
   */
  private body(handler: OriginHandler, buf: Buffer, offset: number, head: ResponseHead | null): void {
    const framer = this.framer;
    const r = framer.advance(buf, offset, buf.length);
    if (r === -2) return this.protocolError(`invalid chunked framing: ${framer.error}`);
    const more = head !== null ? handler.onHead(head, framer.pieces) : framer.pieces.length === 0 || handler.onData(framer.pieces);
    if (this.handler !== handler) return; // discarded by the handler
    if (!more) {
      // Waiting on a slow reader: the client's timeout runs, not the instance's, until it drains.
      this.socket.pause();
      this.deadline = 0;
    }
    if (r >= 0) {
      if (r < buf.length) this.reusable = false; // bytes after the answer: the instance is out of step
      this.complete(handler);
    }
  }

  private complete(handler: OriginHandler): void {
    this.handler = null;
    const reusable = this.reusable && this.idleMs() > 0 && !this.ctx.closing;
    if (!reusable) this.socket.destroy();
    handler.onComplete(this.status, reusable);
  }

  private protocolError(reason: string): void {
    this.error = reason;
    this.invalid = true;
    this.reusable = false;
    this.socket.destroy();
  }

  private fail(reason: string, internal: unknown): void {
    const handler = this.handler;
    this.handler = null;
    this.socket.destroy();
    handler?.onError(this.failure(reason, internal));
    if (!handler) this.ctx.log(`internal error on an instance connection: ${reason}`);
  }

  private failure(reason: string, internal?: unknown): OriginFailure {
    return { connected: this.connected, received: this.received, reused: this.reused, timedOut: this.timedOut, invalid: this.invalid, reason, tunnel: this.phase === O_TUNNEL, internal };
  }

  private onEnd(): void {
    const handler = this.handler;
    if (handler && this.phase === O_TUNNEL) return handler.onTunnelEnd();
    if (handler && this.phase === O_BODY && this.framer.kind === BODY_UNTIL_CLOSE) {
      this.reusable = false;
      return this.complete(handler);
    }
    this.error ||= 'connection closed by the instance';
    this.socket.destroy();
  }

  private onClose(): void {
    this.ctx.origins.delete(this);
    this.pool?.forget(this);
    this.pool = null;
    const handler = this.handler;
    if (handler === null) return;
    this.handler = null;
    handler.onError(this.failure(this.error || 'connection closed by the instance'));
  }
}
