import net from 'node:net';
import { BODY_UNTIL_CLOSE, BodyFramer, writePieces } from './framing.ts';
import { HEAD_DONE, HEAD_MORE, HEAD_TOO_LARGE, HeadReader } from './head.ts';
import { parseResponseHead } from './http1.ts';
import type { ProxyContext, Timed } from './context.ts';
import type { ClientConn } from './client.ts';
import type { Upstream } from './upstream.ts';
import { listHas } from './syntax.ts';
import { stickyHeaders } from './cookie.ts';

const MAX_RESPONSE_HEAD = 65_536;
const SMALL_BODY = 16_384;

const O_IDLE = 0;
const O_HEAD = 1;
const O_BODY = 2;
const O_TUNNEL = 3;

/**
 * One keep-alive connection to an instance. It carries one exchange at a time (no pipelining: a slow response
 * must not hold up the next request) and goes back to its instance's idle stack when the response ended cleanly.
 * Response bytes are forwarded as they arrive; only the head is parsed, the body's end is found by counting
 * (Content-Length) or by following chunk sizes, never by decoding.
 */
export class OriginConn implements Timed {
  readonly socket: net.Socket;
  readonly upstream: Upstream;
  private readonly ctx: ProxyContext;
  client: ClientConn | null;
  connected = false;
  deadline: number;
  private phase = O_HEAD;
  private readonly reader = new HeadReader(MAX_RESPONSE_HEAD, 0);
  /** Taken from an idle pool: it served an earlier request, so a failure before any answer may only mean stale. */
  reused = false;
  /** reuse 'client': the client connection whose private pool holds this socket while idle. */
  owner: ClientConn | null = null;
  /** Bytes of the current response received so far: 0 means the request may be replayed elsewhere. */
  received = 0;
  private status = 0;
  private closeDelimited = false;
  private reusable = true;
  /** How long the instance said it keeps this connection open when idle (Keep-Alive: timeout=N); 0 unknown. */
  private keepAliveMs = 0;
  private readonly framer = new BodyFramer();
  private error = '';
  /** The instance answered with bytes that are not valid HTTP/1.1 (answered 502, never passed on). */
  invalidResponse = false;
  private timedOut = false;
  private done = false;

  constructor(ctx: ProxyContext, upstream: Upstream, client: ClientConn) {
    this.ctx = ctx;
    this.upstream = upstream;
    this.client = client;
    this.deadline = ctx.now + ctx.config.timeouts.connect;
    const socket = net.connect({ host: upstream.host, port: upstream.port, noDelay: true, allowHalfOpen: true });
    this.socket = socket;
    ctx.origins.add(this);
    socket.on('connect', () => {
      this.connected = true;
      this.deadline = this.ctx.now + this.ctx.config.timeouts.response;
      this.client?.attach(this);
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        this.onData(chunk);
      } catch (err) {
        // The client side releases the instance slot when it closes; this socket is simply gone.
        const client = this.client;
        this.client = null;
        this.socket.destroy();
        if (client) client.internalError(err);
        else this.ctx.log(`internal error on an instance connection: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
    socket.on('drain', () => this.client?.resumeFromOrigin());
    socket.on('end', () => this.onEnd());
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.error ||= err.code ?? err.message;
    });
    socket.on('close', () => this.onClose());
  }

  /** Prepares for the response to a request about to be written on this socket. */
  expect(client: ClientConn): void {
    this.client = client;
    this.phase = O_HEAD;
    this.reader.reset();
    this.received = 0;
    this.deadline = this.ctx.now + this.ctx.config.timeouts.response;
  }

  /** The client drained what we forwarded: read on from the instance. */
  resumeFromClient(): void {
    if (!this.socket.isPaused()) return;
    this.socket.resume();
    if (this.phase === O_BODY) this.deadline = this.ctx.now + this.ctx.config.timeouts.response;
  }

  /** Closes an idle socket (the instance is drained, removed or ejected). */
  destroy(): void {
    this.socket.destroy();
  }

  onTimeout(): void {
    if (this.phase === O_IDLE || !this.client) {
      this.socket.destroy();
      return;
    }
    this.timedOut = true;
    this.error ||= this.connected ? 'response timeout' : 'connect timeout';
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    const client = this.client;
    if (client === null) {
      // Bytes on an idle socket are a protocol error by the instance: never hand this socket out again.
      this.socket.destroy();
      return;
    }
    if (this.phase === O_TUNNEL) {
      client.deadline = this.ctx.now + this.ctx.config.timeouts.tunnel;
      if (!client.socket.write(chunk)) this.socket.pause();
      return;
    }
    this.received += chunk.length;
    this.deadline = this.ctx.now + this.ctx.config.timeouts.response;
    if (this.phase === O_BODY) {
      this.body(client, chunk, 0, '');
      return;
    }
    const reader = this.reader;
    const r = reader.feed(chunk);
    if (r === HEAD_MORE) return;
    if (r !== HEAD_DONE) return this.protocolError(r === HEAD_TOO_LARGE ? 'response head too large' : `invalid response head: ${reader.error}`);
    const req = client.req!;
    const res = parseResponseHead(reader.head, req.method === 'HEAD');
    const { data: buf, offset } = reader;
    reader.reset();
    if (typeof res === 'string') return this.protocolError(`invalid response head: ${res}`);
    if (res.status < 200) {
      if (res.status === 101 && req.upgrade && listHas(res.upgrade, req.upgrade)) return this.tunnel(client, res.head, buf, offset);
      if (res.status === 101) return this.protocolError('101 without a matching upgrade request');
      // Interim (100 Continue, 103 Early Hints): pass through, then read the final head.
      client.socket.write(`${res.head}\r\n`, 'latin1');
      client.started = true;
      if (offset < buf.length) this.onData(buf.subarray(offset));
      return;
    }
    if (client.retryableAnswer(res.status)) {
      // Nothing reached the client yet: drop this answer (and its socket, rather than read a body no one wants).
      this.status = res.status;
      this.done = true;
      this.client = null;
      this.socket.destroy();
      client.retryAnswer(this, res.status);
      return;
    }
    this.status = res.status;
    this.framer.begin(res.framing);
    this.closeDelimited = res.framing.kind === BODY_UNTIL_CLOSE;
    this.reusable = !res.close && !this.closeDelimited && !req.upgrade && !res.noReuse;
    this.keepAliveMs = res.keepAliveMs;
    let head = res.head;
    if (client.insertCookie) head += stickyHeaders(this.ctx.config.cookie.name, this.upstream.id, this.ctx.config.cookie.secure);
    // A body ended by closing, or a request body still arriving, means the client connection ends with it.
    if (this.closeDelimited || !client.bodyDone || this.ctx.closing) client.closeAfter = true;
    head += client.closeAfter ? 'Connection: close\r\n\r\n' : '\r\n';
    this.phase = O_BODY;
    this.body(client, buf, offset, head);
  }

  /**
   * Forwards what the framer validated of buf[offset..], after `head` when this is the first part. The first
   * part is framed before anything is written, so a response whose framing breaks there is still a clean 502.
   */
  private body(client: ClientConn, buf: Buffer, offset: number, head: string): void {
    const framer = this.framer;
    const r = framer.advance(buf, offset, buf.length);
    if (r === -2) return this.protocolError(`invalid chunked framing: ${framer.error}`);
    const complete = r >= 0;
    const pieces = framer.pieces;
    const out = client.socket;
    if (head) {
      client.started = true;
      const first = pieces.length === 1 ? pieces[0]! : null;
      if (pieces.length === 0) out.write(head, 'latin1');
      else if (first !== null && first.length <= SMALL_BODY) {
        // One buffer, one plain write: cheaper than cork + writev for the common small answer.
        const headLength = head.length; // latin1: one byte per character
        const joined = Buffer.allocUnsafe(headLength + first.length);
        joined.write(head, 0, headLength, 'latin1');
        first.copy(joined, headLength);
        out.write(joined);
      } else {
        out.cork();
        out.write(head, 'latin1');
        writePieces(out, pieces);
        out.uncork();
      }
    } else if (pieces.length > 0) writePieces(out, pieces);
    if (out.writableNeedDrain) {
      // Waiting on a slow reader: the client's send timeout runs, the instance's stops until the client drains.
      this.socket.pause();
      this.deadline = 0;
      client.deadline = this.ctx.now + this.ctx.config.timeouts.response;
    }
    if (complete) {
      if (r < buf.length) this.reusable = false; // bytes after the answer: the instance is out of step
      this.complete(client);
    }
  }

  private complete(client: ClientConn): void {
    this.client = null;
    const u = this.upstream;
    const ctx = this.ctx;
    // Give the socket up a second before the instance would close it, so it is never reused as it closes.
    let idleMs = ctx.config.timeouts.upstreamIdle;
    if (this.keepAliveMs > 0) idleMs = Math.min(idleMs, this.keepAliveMs - 1000);
    const keep = this.reusable && idleMs > 0 && client.bodyDone && !ctx.closing && u.available(ctx.now, true);
    if (keep && ctx.config.reuse === 'client' && !client.closeAfter) {
      this.idle(idleMs);
      this.owner = client;
      client.keepOrigin(this);
    } else if (keep && ctx.config.reuse === 'shared' && u.idle.length < ctx.config.limits.idlePerUpstream) {
      this.idle(idleMs);
      u.idle.push(this);
    } else {
      this.done = true;
      this.socket.destroy();
    }
    client.responseDone(this.status);
  }

  private idle(idleMs: number): void {
    this.phase = O_IDLE;
    this.deadline = this.ctx.now + idleMs;
    this.reused = true;
    if (this.socket.isPaused()) this.socket.resume();
  }

  private tunnel(client: ClientConn, head: string, buf: Buffer, offset: number): void {
    this.phase = O_TUNNEL;
    this.deadline = 0;
    this.reusable = false;
    let out = head;
    if (client.insertCookie) out += stickyHeaders(this.ctx.config.cookie.name, this.upstream.id, this.ctx.config.cookie.secure);
    client.socket.cork();
    client.socket.write(`${out}Connection: Upgrade\r\n\r\n`, 'latin1');
    if (offset < buf.length) client.socket.write(buf.subarray(offset));
    client.socket.uncork();
    client.startTunnel(this);
  }

  private protocolError(reason: string): void {
    this.error = reason;
    this.invalidResponse = true;
    this.reusable = false;
    this.socket.destroy();
  }

  private onEnd(): void {
    const client = this.client;
    if (client && this.phase === O_TUNNEL) {
      client.socket.end();
      return;
    }
    if (client && this.phase === O_BODY && this.closeDelimited) {
      this.reusable = false;
      this.complete(client);
      return;
    }
    this.error ||= 'connection closed by the instance';
    this.socket.destroy();
  }

  private onClose(): void {
    this.ctx.origins.delete(this);
    const idle = this.upstream.idle;
    const at = idle.lastIndexOf(this);
    if (at !== -1) idle.splice(at, 1);
    this.owner?.forgetOrigin(this);
    this.owner = null;
    const client = this.client;
    if (client === null || this.done) return;
    this.client = null;
    if (this.phase === O_TUNNEL) {
      client.tunnelClosed();
      return;
    }
    client.originFailed(this, this.error || 'connection closed by the instance', this.timedOut);
  }
}
