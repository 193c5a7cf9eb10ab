/**
 * Message framing, the one place that decides where a message ends, for requests and responses alike
 * (RFC 9112 6). The framing headers received are never forwarded: each side gets the one `Content-Length` or
 * `Transfer-Encoding: chunked` this module writes from what it validated, and body bytes leave through
 * BodyFramer, which forwards counted bytes, or chunked data re-framed by ChunkedCodec. Whatever a peer sends that
 * could be read two ways (two lengths, length and chunked, a coding that is not chunked) is refused here, for
 * both directions: the class of bug behind request smuggling and response splitting has one home.
 */
import { CHUNKED_ERROR, ChunkedCodec } from './chunked.ts';
import { isToken, listElements, trimOws } from './syntax.ts';

export const BODY_NONE = 0;
export const BODY_LENGTH = 1;
export const BODY_CHUNKED = 2;
/** A response without length or chunked: the body ends when the instance closes (RFC 9112 6.3 item 8). */
export const BODY_UNTIL_CLOSE = 3;

export interface Framing {
  kind: number;
  /** Content-Length for BODY_LENGTH, else -1. */
  length: number;
  /** The framing header line to send on, written here from the validated values ('' for none). */
  header: string;
}

/** Why a message's framing was refused, and with which status a request is answered. */
interface FramingError {
  status: number;
  reason: string;
}

const DIGITS = /^[0-9]{1,15}$/;
const NONE: Framing = { kind: BODY_NONE, length: -1, header: '' };
const UNTIL_CLOSE: Framing = { kind: BODY_UNTIL_CLOSE, length: -1, header: '' };
const CHUNKED: Framing = { kind: BODY_CHUNKED, length: -1, header: 'Transfer-Encoding: chunked\r\n' };

/** The framing field of a body the balancer re-encodes itself (compression): always chunked. */
export const CHUNKED_HEADER = CHUNKED.header;
const CRLF = Buffer.from('\r\n');
/** The last chunk, without trailers. */
export const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/** One chunk of a body the balancer produced (never of received bytes): size line, the data, CRLF. */
export function chunkPieces(data: Buffer): Buffer[] {
  // An empty chunk would read as the last one.
  if (data.length === 0) return [];
  return [Buffer.from(`${data.length.toString(16)}\r\n`, 'latin1'), data, CRLF];
}

function counted(length: number): Framing {
  return { kind: length === 0 ? BODY_NONE : BODY_LENGTH, length, header: `Content-Length: ${length}\r\n` };
}

/**
 * The framing of a request from its Content-Length and Transfer-Encoding values (each header's value, in order).
 * Stricter than RFC 9112 allows, as nginx and llhttp are: one Content-Length header holding one number; chunked
 * as the only coding; never both.
 */
export function requestFraming(minor: number, lengths: string[] | undefined, codings: string[] | undefined): Framing | FramingError {
  if (codings !== undefined) {
    // Both at once is the classic smuggling vector (RFC 9112 6.1): refuse rather than pick one.
    if (lengths !== undefined) return { status: 400, reason: 'both Transfer-Encoding and Content-Length' };
    if (minor === 0) return { status: 400, reason: 'Transfer-Encoding in an HTTP/1.0 request' };
    const coding = onlyChunked(codings);
    if (coding !== '') return { status: coding === 'unknown' ? 501 : 400, reason: coding === 'unknown' ? 'unsupported Transfer-Encoding' : 'malformed Transfer-Encoding' };
    return CHUNKED;
  }
  if (lengths === undefined) return NONE;
  if (lengths.length > 1) return { status: 400, reason: 'more than one Content-Length header' };
  const value = trimOws(lengths[0]!);
  if (!DIGITS.test(value)) return { status: 400, reason: 'invalid Content-Length' };
  return counted(Number(value));
}

/**
 * The framing of an instance's response (RFC 9112 6.3), or the reason it is a 502. Normalises where nginx and
 * HAProxy do: repeated identical lengths become one, and Transfer-Encoding wins over Content-Length (which is
 * dropped; the instance connection is then not reused). A coding other than chunked, a length that is not one
 * number, or chunked in an HTTP/1.0 answer is refused.
 */
export function responseFraming(minor: number, status: number, noBody: boolean, lengths: string[] | undefined, codings: string[] | undefined): Framing | string {
  let length = -1;
  if (lengths !== undefined) {
    // The common case first: one header with one number (no list to split).
    const single = lengths.length === 1 ? trimOws(lengths[0]!) : '';
    let spelled = DIGITS.test(single) ? single : '';
    if (spelled === '') {
      for (const header of lengths) {
        for (const element of listElements(header)) {
          if (!DIGITS.test(element)) return 'invalid Content-Length';
          // Only the same value spelled the same way is a duplicate; `030, 30` is two readings.
          if (spelled !== '' && element !== spelled) return 'conflicting Content-Length values';
          spelled = element;
        }
      }
      if (spelled === '') return 'empty Content-Length';
    }
    length = Number(spelled);
  }
  let chunked = false;
  if (codings !== undefined) {
    if (minor === 0) return 'Transfer-Encoding in an HTTP/1.0 response';
    if (onlyChunked(codings) !== '') return 'unsupported Transfer-Encoding';
    chunked = true;
  }
  // 1xx and 204 carry no framing at all (RFC 9110 8.6, 15.3.5); HEAD and 304 keep what they announce, unused.
  if (status < 200 || status === 204) return NONE;
  if (noBody) return chunked ? { ...CHUNKED, kind: BODY_NONE } : length === -1 ? NONE : { ...counted(length), kind: BODY_NONE };
  if (chunked) return CHUNKED;
  if (length === -1) return UNTIL_CLOSE;
  return counted(length);
}

/** '' when the codings are exactly one `chunked`; 'unknown' for another coding; 'malformed' otherwise. */
function onlyChunked(codings: string[]): string {
  let chunked = 0;
  let unknown = false;
  for (const header of codings) {
    // No empty elements (`chunked,`): llhttp reads that as not chunked, RFC 9110 5.6.1 as chunked; refused.
    const elements = header.split(',').map(trimOws);
    for (const element of elements) {
      if (!isToken(element)) return 'malformed'; // `chu\xA0nked` is not a token, not a spelling of chunked
      if (element.toLowerCase() === 'chunked') chunked++;
      else unknown = true;
    }
  }
  if (unknown) return 'unknown';
  return chunked === 1 ? '' : 'malformed';
}

/**
 * Where a message body ends and which bytes of it to forward: counted bytes as received, chunked bodies through
 * ChunkedCodec. One per connection side, begun per message.
 */
export class BodyFramer {
  kind = BODY_NONE;
  private left = 0;
  private readonly chunked = new ChunkedCodec();
  /** What to forward for the bytes the last advance() read (valid until the next call). */
  readonly pieces: Buffer[] = [];
  error = '';

  begin(framing: Framing): void {
    this.kind = framing.kind;
    this.left = framing.kind === BODY_LENGTH ? framing.length : 0;
    this.error = '';
    if (framing.kind === BODY_CHUNKED) this.chunked.reset();
  }

  /** Reads buf[start, end): index just past the body's end, -1 when it goes on, -2 on invalid framing (`error`). */
  advance(buf: Buffer, start: number, end: number): number {
    const pieces = this.pieces;
    pieces.length = 0;
    switch (this.kind) {
      case BODY_NONE:
        return start;
      case BODY_LENGTH: {
        const take = Math.min(this.left, end - start);
        this.left -= take;
        if (take > 0) pieces.push(start === 0 && take === buf.length ? buf : buf.subarray(start, start + take));
        return this.left === 0 ? start + take : -1;
      }
      case BODY_CHUNKED: {
        const r = this.chunked.advance(buf, start, end, pieces);
        if (r === CHUNKED_ERROR) this.error = this.chunked.error;
        return r;
      }
      default:
        if (end > start) pieces.push(start === 0 && end === buf.length ? buf : buf.subarray(start, end));
        return -1;
    }
  }
}

interface Writable {
  write(b: Buffer): boolean;
  write(s: string, encoding: 'latin1'): boolean;
  cork(): void;
  uncork(): void;
  writableNeedDrain: boolean;
}

const SMALL_BODY = 16_384;

/** Writes framer pieces in one go; false when the socket now needs to drain. */
export function writePieces(socket: Writable, pieces: Buffer[]): boolean {
  if (pieces.length === 1) return socket.write(pieces[0]!);
  socket.cork();
  for (const piece of pieces) socket.write(piece);
  socket.uncork();
  return !socket.writableNeedDrain;
}

/** Writes a head (latin1) and the body pieces that follow it; false when the socket now needs to drain. */
export function writeMessage(socket: Writable, head: string, pieces: Buffer[]): boolean {
  if (pieces.length === 0) return socket.write(head, 'latin1');
  const first = pieces[0]!;
  if (pieces.length === 1 && first.length <= SMALL_BODY) {
    // One buffer, one plain write: cheaper than cork + writev for the common small answer.
    const headLength = head.length; // latin1: one byte per character
    const joined = Buffer.allocUnsafe(headLength + first.length);
    joined.write(head, 0, headLength, 'latin1');
    first.copy(joined, headLength);
    return socket.write(joined);
  }
  socket.cork();
  socket.write(head, 'latin1');
  for (const piece of pieces) socket.write(piece);
  socket.uncork();
  return !socket.writableNeedDrain;
}
