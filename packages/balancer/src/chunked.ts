/**
 * Chunked transfer coding (RFC 9112 7.1), checked byte by byte and re-emitted in canonical form: the chunk data is
 * passed on as it is, but framing bytes leave only as the codec writes them. A chunk-size line goes out as
 * `<hex size> CRLF` without extensions, the last chunk as `0 CRLF CRLF` without trailers (dropped, as nginx does),
 * so a byte another parser could read differently (a bare LF in a trailer, junk after a size, NUL in an
 * extension) is either refused here or never forwarded.
 *
 * Speed: when the framing received is already canonical and sits in one buffer, the output is that buffer itself
 * (one piece, no copy); only a non-canonical or split framing unit costs a small new buffer.
 */
import { isFieldValueChar, isTchar } from './syntax.ts';

// The framing between two chunks' data is one unit: CRLF (after data), chunk size, extensions, CRLF.
const U_CR = 0; // CR ending the previous chunk's data
const U_LF = 1;
const S_FIRST = 2; // first hex digit of a chunk size
const S_DIGITS = 3;
const S_LF = 4; // LF ending the chunk-size line
const X_NAME_START = 5; // chunk extension (RFC 9112 7.1.1), validated and dropped
const X_NAME = 6;
const X_VALUE_START = 7;
const X_TOKEN = 8;
const X_QUOTED = 9;
const X_QUOTED_PAIR = 10;
const X_AFTER_QUOTED = 11;
const DATA = 12;
const T_LINE = 13; // start of a trailer line, or the CR of the final empty line
const T_NAME = 14;
const T_VALUE = 15;
const T_LF = 16;
const T_FINAL_LF = 17;

/** Bytes one chunk-size line (size and extensions) may take, and the whole trailer section. */
const MAX_LINE = 4096;
const MAX_TRAILERS = 16_384;
const MAX_SIZE = 2 ** 48;

export const CHUNKED_MORE = -1;
export const CHUNKED_ERROR = -2;

export class ChunkedCodec {
  private state = S_FIRST;
  /** No chunk emitted yet for this message: its first unit has no leading CRLF. */
  private first = true;
  /** Data bytes left in the current chunk, or the size being read. */
  private size = 0;
  private digits = 0;
  private leadingZero = false;
  /** The current framing unit can be forwarded as received (canonical and within the current buffer). */
  private canonical = true;
  /** Where the current unit started in the buffer being read; -1 when it started in an earlier buffer. */
  private unitStart = -1;
  /** The current unit has no byte yet: it starts at the next buffer (so it may still be forwarded as received). */
  private unitAhead = true;
  private lineBytes = 0;
  private trailerBytes = 0;
  /** The trailer name being read, lower-cased (only as long as the longest name checked). */
  private trailerName = '';
  /** Why advance() returned CHUNKED_ERROR. */
  error = '';

  reset(): void {
    this.state = S_FIRST;
    this.first = true;
    this.size = 0;
    this.digits = 0;
    this.leadingZero = false;
    this.canonical = true;
    this.unitStart = -1;
    this.unitAhead = true;
    this.lineBytes = 0;
    this.trailerBytes = 0;
    this.error = '';
  }

  /**
   * Reads buf[start, end) and appends to `out` what to forward for it. Returns the index just past the message
   * end, CHUNKED_MORE when the message goes on, CHUNKED_ERROR (reason in `error`) when the framing is invalid.
   */
  advance(buf: Buffer, start: number, end: number, out: Buffer[]): number {
    let runStart = start; // forwarded bytes are runs of buf, cut around framing units that are re-written
    let inUnit = this.state !== DATA;
    if (inUnit) this.unitStart = this.unitAhead ? start : -1;
    this.unitAhead = false;
    let i = start;
    while (i < end) {
      const c = buf[i]!;
      switch (this.state) {
        case DATA: {
          const take = Math.min(this.size, end - i);
          this.size -= take;
          i += take;
          if (this.size === 0) {
            this.state = U_CR;
            inUnit = true;
            this.unitStart = i;
            this.canonical = true;
          }
          continue;
        }
        case U_CR:
          if (c !== 13) return this.fail('missing CRLF after chunk data');
          this.state = U_LF;
          break;
        case U_LF:
          if (c !== 10) return this.fail('missing CRLF after chunk data');
          this.state = S_FIRST;
          break;
        case S_FIRST:
        case S_DIGITS: {
          const v = hex(c);
          if (v >= 0) {
            if (this.state === S_FIRST) {
              this.state = S_DIGITS;
              this.size = 0;
              this.digits = 0;
              this.lineBytes = 0;
              this.leadingZero = v === 0;
            }
            this.size = this.size * 16 + v;
            if (++this.digits > 1 && this.leadingZero) this.canonical = false;
            if (this.size > MAX_SIZE) return this.fail('chunk size too large');
          } else if (this.state === S_FIRST) return this.fail('invalid chunk size');
          else if (c === 13) this.state = S_LF;
          else if (c === 10) return this.fail('bare LF after the chunk size');
          else if (c === 59 /* ; */) {
            this.canonical = false;
            this.state = X_NAME_START;
          } else return this.fail('invalid character after the chunk size'); // `5 junk`, `5\t;x`: no BWS, as llhttp
          break;
        }
        case X_NAME_START:
          if (!isTchar(c)) return this.fail('malformed chunk extension');
          this.state = X_NAME;
          break;
        case X_NAME:
        case X_TOKEN:
          if (isTchar(c)) break;
          if (c === 61 /* = */ && this.state === X_NAME) this.state = X_VALUE_START;
          else if (c === 59) this.state = X_NAME_START;
          else if (c === 13) this.state = S_LF;
          else return this.fail('malformed chunk extension');
          break;
        case X_VALUE_START:
          if (c === 34 /* " */) this.state = X_QUOTED;
          else if (isTchar(c)) this.state = X_TOKEN;
          else return this.fail('malformed chunk extension');
          break;
        case X_QUOTED:
          if (c === 34) this.state = X_AFTER_QUOTED;
          else if (c === 92 /* \ */) this.state = X_QUOTED_PAIR;
          else if (!isFieldValueChar(c)) return this.fail('malformed chunk extension');
          break;
        case X_QUOTED_PAIR:
          if (!isFieldValueChar(c)) return this.fail('malformed chunk extension');
          this.state = X_QUOTED;
          break;
        case X_AFTER_QUOTED:
          if (c === 59) this.state = X_NAME_START;
          else if (c === 13) this.state = S_LF;
          else return this.fail('malformed chunk extension');
          break;
        case S_LF:
          if (c !== 10) return this.fail('missing LF after the chunk size');
          if (this.size > 0) {
            runStart = this.endUnit(buf, start, runStart, i, out);
            inUnit = false;
            this.first = false;
            this.state = DATA;
          } else this.state = T_LINE;
          break;
        case T_LINE:
          if (c === 13) this.state = T_FINAL_LF;
          else if (isTchar(c)) {
            this.canonical = false; // trailers are validated, then dropped
            this.state = T_NAME;
            this.trailerName = String.fromCharCode(c | 0x20);
          } else return this.fail('malformed trailer line'); // obs-fold, bare LF, controls
          break;
        case T_NAME:
          if (c === 58 /* : */) {
            // Framing fields must not be trailers (RFC 9110 6.5.1); Node's parser refuses them too.
            if (this.trailerName === 'content-length' || this.trailerName === 'transfer-encoding') return this.fail('framing field in the trailers');
            this.state = T_VALUE;
          } else if (!isTchar(c)) return this.fail('malformed trailer name');
          else if (this.trailerName.length < 18) this.trailerName += String.fromCharCode(c >= 65 && c <= 90 ? c | 0x20 : c);
          break;
        case T_VALUE:
          if (c === 13) this.state = T_LF;
          else if (!isFieldValueChar(c)) return this.fail('invalid character in a trailer');
          break;
        case T_LF:
          if (c !== 10) return this.fail('bare CR in a trailer');
          this.state = T_LINE;
          break;
        case T_FINAL_LF: {
          if (c !== 10) return this.fail('missing LF after the last chunk');
          runStart = this.endUnit(buf, start, runStart, i, out);
          if (i + 1 > runStart) out.push(runStart === 0 && i + 1 === buf.length ? buf : buf.subarray(runStart, i + 1));
          this.reset();
          return i + 1;
        }
      }
      if (this.state >= T_LINE ? ++this.trailerBytes > MAX_TRAILERS : ++this.lineBytes > MAX_LINE) {
        return this.fail(this.state >= T_LINE ? 'trailer section too large' : 'chunk-size line too long');
      }
      i++;
    }
    // The buffer ends: forward what is settled. A unit still open is re-written once it is complete.
    const settled = inUnit ? (this.unitStart >= 0 ? this.unitStart : start) : end;
    if (settled > runStart) out.push(runStart === 0 && settled === buf.length ? buf : buf.subarray(runStart, settled));
    if (inUnit) {
      if (this.unitStart === end) this.unitAhead = true; // nothing of it read yet
      else this.canonical = false; // its first bytes were not forwarded: it is written anew when complete
      this.unitStart = -1;
    }
    return CHUNKED_MORE;
  }

  /** A framing unit ends at buf[last]: keep it in the run when canonical, else cut the run and write it anew. */
  private endUnit(buf: Buffer, start: number, runStart: number, last: number, out: Buffer[]): number {
    if (this.canonical && this.unitStart >= 0) return runStart;
    const unitStart = this.unitStart >= 0 ? this.unitStart : start;
    if (unitStart > runStart) out.push(buf.subarray(runStart, unitStart));
    const lead = this.first ? '' : '\r\n';
    out.push(Buffer.from(this.size > 0 ? `${lead}${this.size.toString(16)}\r\n` : `${lead}0\r\n\r\n`, 'latin1'));
    return last + 1;
  }

  private fail(reason: string): number {
    this.error = reason;
    return CHUNKED_ERROR;
  }
}

function hex(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}
