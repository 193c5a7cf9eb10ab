/**
 * Opt-in compression of answers (`compress`), as nginx's gzip module does in front of Node apps: brotli or gzip
 * by the request's Accept-Encoding (q-values honoured, brotli on a tie), compressible types only, never over an
 * encoding the instance chose itself, never with `Cache-Control: no-transform`. The compressed body leaves as
 * chunked framing written by framing.ts's chunk writer, so the balancer still writes every framing byte itself.
 * node:zlib streams do the work off the main thread's hot path (libuv's pool); back-pressure runs both ways.
 */
import zlib from 'node:zlib';
import { chunkPieces, LAST_CHUNK, CHUNKED_HEADER } from './framing.ts';

export const ENC_NONE = 0;
export const ENC_GZIP = 1;
export const ENC_BR = 2;

/** Bodies announced shorter than this are sent as they are: the frame overhead would eat the gain. */
const MIN_LENGTH = 256;
/**
 * Answers announced up to this size are collected and compressed in one synchronous call when complete: a zlib
 * stream per answer (its state allocated, every piece a hop to libuv's pool and back) cost ~10x more CPU than
 * the compression itself for an 8 KiB answer (bench edge). Larger or unannounced bodies stream.
 */
const BUFFER_UP_TO = 65_536;
/**
 * On-the-fly levels: brotli 4 and gzip 4 compress about as well as gzip 6 at a fraction of brotli 11's cost.
 * Brotli's window is 256 KiB (lgwin 18) instead of the default 4 MiB: that ring buffer is allocated per stream.
 * A collected body gets a gzip window no larger than itself and memLevel 7: the same output for an 8 KiB answer,
 * with a fraction of the state zlib allocates and clears per call.
 */
const BROTLI = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4, [zlib.constants.BROTLI_PARAM_LGWIN]: 18 } };
const GZIP = { level: 4 };

const COMPRESSIBLE = /^(?:text\/(?:html|plain|css|javascript|xml|csv|markdown)|application\/(?:json|javascript|xml|x-javascript|manifest\+json|ld\+json|[a-z0-9.+-]+\+(?:json|xml))|image\/svg\+xml)(?:[ \t]*;|[ \t]*$)/i;
const CONTENT_TYPE = /\r\ncontent-type:[ \t]*([^\r\n]*)/i;
const CONTENT_ENCODING = /\r\ncontent-encoding:/i;
const NO_TRANSFORM = /\r\ncache-control:[^\r\n]*no-transform/i;
const CONTENT_RANGE = /\r\ncontent-range:/i;
const VARY_DONE = /\r\nvary:[^\r\n]*(?:accept-encoding|\*)/i;
const STRONG_ETAG = /\r\netag:[ \t]*"/i;
const ACCEPT_ENCODING = /(?:^|\n)accept-encoding:[ \t]*([^\r\n]*)/gi;
const Q = /^q=(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)$/i;

/** The request's Accept-Encoding values, joined ('' when absent), from the forwarded field lines. */
export function acceptEncoding(headers: string): string {
  let out = '';
  for (const m of headers.matchAll(ACCEPT_ENCODING)) out += out === '' ? m[1]! : `,${m[1]!}`;
  return out;
}

/** br or gzip by RFC 9110 12.5.3: the higher q wins, brotli on a tie; `*` covers what is not named; q=0 refuses. */
export function pickEncoding(accept: string): number {
  if (accept === '') return ENC_NONE;
  let br = -1;
  let gzip = -1;
  let any = -1;
  for (const element of accept.split(',')) {
    const parts = element.split(';');
    const coding = parts[0]!.trim().toLowerCase();
    let q = 1;
    for (let i = 1; i < parts.length; i++) {
      const m = Q.exec(parts[i]!.trim());
      if (m) q = Number(m[1]);
      else if (parts[i]!.trim() !== '') q = 0; // a malformed weight is not a yes
    }
    if (coding === 'br') br = Math.max(br, q);
    else if (coding === 'gzip' || coding === 'x-gzip') gzip = Math.max(gzip, q);
    else if (coding === '*') any = Math.max(any, q);
  }
  if (br === -1) br = any;
  if (gzip === -1) gzip = any;
  if (br <= 0 && gzip <= 0) return ENC_NONE;
  return br >= gzip ? ENC_BR : ENC_GZIP;
}

/**
 * Whether an answer may be compressed: a 2xx with a body (not 204/206), a compressible Content-Type, no
 * Content-Encoding, no no-transform, not announced as tiny. `head` is the re-serialised head (framing.ts's).
 */
export function compressible(status: number, head: string, length: number): boolean {
  if (status < 200 || status > 299 || status === 204 || status === 206) return false;
  if (length !== -1 && length < MIN_LENGTH) return false;
  const type = CONTENT_TYPE.exec(head);
  if (type === null || !COMPRESSIBLE.test(type[1]!)) return false;
  return !CONTENT_ENCODING.test(head) && !NO_TRANSFORM.test(head) && !CONTENT_RANGE.test(head);
}

/** `Vary: Accept-Encoding` unless the instance already varies on it (or on everything). */
export function varyLine(head: string): string {
  return VARY_DONE.test(head) ? '' : 'Vary: Accept-Encoding\r\n';
}

/**
 * The head of the compressed answer: the instance's framing field dropped (`framingHeader` is the line framing.ts
 * wrote), a strong ETag made weak (the bytes differ now, the meaning does not: RFC 9110 8.8.1), the coding named,
 * chunked framing.
 */
export function compressedHead(head: string, framingHeader: string, encoding: number): string {
  let h = framingHeader === '' ? head : head.slice(0, head.length - framingHeader.length);
  if (STRONG_ETAG.test(h)) h = h.replace(STRONG_ETAG, (m) => `${m.slice(0, m.length - 1)}W/"`);
  return `${h}${varyLine(h)}Content-Encoding: ${encoding === ENC_BR ? 'br' : 'gzip'}\r\n${CHUNKED_HEADER}`;
}

const D_SIZE = 0;
const D_SIZE_LF = 1;
const D_DATA = 2;
const D_DATA_CR = 3;
const D_DATA_LF = 4;
const D_END_CR = 5;
const D_END_LF = 6;
const D_DONE = 7;

/**
 * The data of a chunked body as chunked.ts re-emits it (canonical: `hex CRLF data CRLF ... 0 CRLF CRLF`, no
 * extensions, no trailers, already validated there). Anything else is a bug and throws: the connection is closed
 * by the caller's internal-error path rather than compressing bytes read two ways.
 */
export class Dechunker {
  private state = D_SIZE;
  private size = 0;

  feed(piece: Buffer, out: Buffer[]): void {
    let i = 0;
    const n = piece.length;
    while (i < n) {
      if (this.state === D_DATA) {
        const take = Math.min(this.size, n - i);
        out.push(i === 0 && take === n ? piece : piece.subarray(i, i + take));
        this.size -= take;
        i += take;
        if (this.size === 0) this.state = D_DATA_CR;
        continue;
      }
      const c = piece[i++]!;
      switch (this.state) {
        case D_SIZE: {
          const v = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
          if (v >= 0) this.size = this.size * 16 + v;
          else if (c === 13) this.state = D_SIZE_LF;
          else throw new Error('compress: non-canonical chunk size');
          break;
        }
        case D_SIZE_LF:
          if (c !== 10) throw new Error('compress: non-canonical chunk size line');
          this.state = this.size > 0 ? D_DATA : D_END_CR;
          break;
        case D_DATA_CR:
          if (c !== 13) throw new Error('compress: non-canonical chunk end');
          this.state = D_DATA_LF;
          break;
        case D_DATA_LF:
          if (c !== 10) throw new Error('compress: non-canonical chunk end');
          this.state = D_SIZE;
          this.size = 0;
          break;
        case D_END_CR:
          if (c !== 13) throw new Error('compress: non-canonical last chunk');
          this.state = D_END_LF;
          break;
        case D_END_LF:
          if (c !== 10) throw new Error('compress: non-canonical last chunk');
          this.state = D_DONE;
          break;
        default:
          throw new Error('compress: bytes after the last chunk');
      }
    }
  }
}

/** Where the compressed chunks go: the client socket's writer (false when it must drain first). */
export interface CompressSink {
  write(pieces: Buffer[]): boolean;
  /** The compressed stream ended and its last chunk is written. */
  done(): void;
  /** The compressor can take more input (after write() returned false). */
  writable(): void;
}

/** One answer's body through brotli or gzip, re-framed as chunks. */
export class Compressor {
  private readonly z: zlib.Gzip | zlib.BrotliCompress | null;
  private readonly encoding: number;
  /** Small announced bodies: collected here, compressed at end(). */
  private readonly collected: Buffer[] | null;
  private readonly sink: CompressSink;
  private finished = false;
  /** The instance's body is chunked: framing.ts's canonical chunks are unwrapped to their data first. */
  private readonly dechunker: Dechunker | null;
  private readonly data: Buffer[] = [];

  /** `length`: the announced body length, -1 when unknown. */
  constructor(encoding: number, chunked: boolean, length: number, sink: CompressSink) {
    this.sink = sink;
    this.encoding = encoding;
    this.dechunker = chunked ? new Dechunker() : null;
    if (length !== -1 && length <= BUFFER_UP_TO) {
      this.collected = [];
      this.z = null;
      return;
    }
    this.collected = null;
    const z = (this.z = encoding === ENC_BR ? zlib.createBrotliCompress(BROTLI) : zlib.createGzip(GZIP));
    z.on('data', (out: Buffer) => {
      // The client is slow: stop reading compressed output until it drains (then resume()).
      if (!this.sink.write(chunkPieces(out))) z.pause();
    });
    z.on('drain', () => this.sink.writable());
    z.on('end', () => {
      if (this.finished) return;
      this.finished = true;
      this.sink.write([LAST_CHUNK]);
      this.sink.done();
    });
    z.on('error', () => {}); // only destroy() ends it early, and then nothing is waiting
  }

  /** Body pieces from the instance; false when zlib holds enough and the instance should pause. */
  write(pieces: Buffer[]): boolean {
    let input = pieces;
    if (this.dechunker !== null) {
      input = this.data;
      input.length = 0;
      for (const p of pieces) this.dechunker.feed(p, input);
    }
    if (this.collected !== null) {
      // Bounded by the announced length (framing.ts counts it), at most BUFFER_UP_TO.
      for (const p of input) this.collected.push(p);
      return true;
    }
    let ok = true;
    for (const p of input) ok = this.z!.write(p);
    return ok;
  }

  /** The client socket drained. */
  resume(): void {
    this.z?.resume();
  }

  /** The instance's body is complete: flush, then the last chunk, then sink.done(). */
  end(): void {
    if (this.z !== null) return void this.z.end();
    const body = Buffer.concat(this.collected!);
    const out = this.encoding === ENC_BR ? zlib.brotliCompressSync(body, { params: { ...BROTLI.params, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: body.length } }) : zlib.gzipSync(body, { ...GZIP, memLevel: 7, windowBits: Math.min(15, Math.max(10, Math.ceil(Math.log2(body.length + 1)))) });
    this.finished = true;
    this.sink.write([...chunkPieces(out), LAST_CHUNK]);
    this.sink.done();
  }

  destroy(): void {
    this.finished = true;
    this.z?.destroy();
  }
}
