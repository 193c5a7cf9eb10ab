/**
 * Accumulates one message head from socket chunks, for the request side and the response side alike: finds the
 * empty line that ends it, bounds its size, and refuses early what could never become a valid head (a bare LF
 * line end, which would otherwise wait for a CRLF CRLF until a timeout).
 */

const CRLFCRLF = Buffer.from('\r\n\r\n');
const EMPTY = Buffer.alloc(0);

export const HEAD_MORE = 0;
export const HEAD_DONE = 1;
export const HEAD_TOO_LARGE = 2;
export const HEAD_BAD = 3;

export class HeadReader {
  private readonly limit: number;
  private readonly maxEmptyLines: number;
  private pending: Buffer | null = null;
  private emptyLines = 0;
  /** After HEAD_DONE: the head (latin1, through the CRLF ending its last line, without the empty line). */
  head = '';
  /** After HEAD_DONE: the buffer the head ended in, and where the bytes after the head start in it. */
  data: Buffer = EMPTY;
  offset = 0;
  /** After HEAD_BAD: why. */
  error = '';

  /**
   * `limit`: bytes a head may take, empty lines before it included. `maxEmptyLines`: empty lines tolerated before
   * a request line (RFC 9112 2.2 allows some, for clients that end a body with an extra CRLF).
   */
  constructor(limit: number, maxEmptyLines: number) {
    this.limit = limit;
    this.maxEmptyLines = maxEmptyLines;
  }

  /** Some byte of a head arrived (an empty line included) but not the whole head. */
  get started(): boolean {
    return this.pending !== null || this.emptyLines > 0;
  }

  reset(): void {
    this.pending = null;
    this.emptyLines = 0;
    this.data = EMPTY;
  }

  feed(chunk: Buffer): number {
    let buf = chunk;
    let scanFrom = 0;
    if (this.pending !== null) {
      scanFrom = Math.max(0, this.pending.length - 3);
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let from = 0;
    while (buf.length - from >= 2 && buf[from] === 13 && buf[from + 1] === 10) {
      if (++this.emptyLines > this.maxEmptyLines) return this.bad(this.maxEmptyLines ? `more than ${this.maxEmptyLines} empty lines before the request` : 'empty line before the head');
      from += 2;
    }
    if (from > 0) scanFrom = 0;
    const used = this.emptyLines * 2 - from; // empty lines read in earlier chunks count toward the limit too
    const idx = buf.indexOf(CRLFCRLF, from + scanFrom);
    if (idx === -1) {
      if (buf.length + used > this.limit) return HEAD_TOO_LARGE;
      if (hasBareLf(buf, Math.max(from, from + scanFrom - 1))) return this.bad('bare LF in the head');
      if (from < buf.length) this.pending = from === 0 ? buf : buf.subarray(from);
      return HEAD_MORE;
    }
    if (idx + 4 + used > this.limit) return HEAD_TOO_LARGE;
    this.head = buf.toString('latin1', from, idx + 2);
    this.data = buf;
    this.offset = idx + 4;
    this.emptyLines = 0;
    return HEAD_DONE;
  }

  private bad(reason: string): number {
    this.error = reason;
    this.pending = null;
    return HEAD_BAD;
  }
}

/** An LF at or after `from` that no CR precedes. */
function hasBareLf(buf: Buffer, from: number): boolean {
  let i = buf.indexOf(10, from);
  while (i !== -1) {
    if (i === 0 || buf[i - 1] !== 13) return true;
    i = buf.indexOf(10, i + 1);
  }
  return false;
}
