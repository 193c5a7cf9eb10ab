/**
 * Chunked transfer coding (RFC 9112 7.1), followed rather than decoded: the proxy forwards chunked bodies as they
 * are and only needs to know where each message ends.
 */

const S_SIZE = 0;
const S_EXT = 1;
const S_SIZE_LF = 2;
const S_DATA = 3;
const S_DATA_CR = 4;
const S_DATA_LF = 5;
const S_LINE_START = 6;
const S_TRAILER = 7;
const S_TRAILER_LF = 8;
const S_FINAL_LF = 9;

/** Follows chunked framing across buffers. One instance per connection, reset per message. */
export class ChunkedTracker {
  state = S_SIZE;
  size = 0;
  digits = 0;
  trailerBytes = 0;

  reset(): void {
    this.state = S_SIZE;
    this.size = 0;
    this.digits = 0;
    this.trailerBytes = 0;
  }

  /** Index just past the end of the message within buf[start, end), -1 when more bytes are needed, -2 on bad framing. */
  advance(buf: Uint8Array, start: number, end: number): number {
    let i = start;
    while (i < end) {
      const c = buf[i]!;
      switch (this.state) {
        case S_SIZE: {
          const v = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
          if (v >= 0) {
            if (++this.digits > 12) return -2;
            this.size = this.size * 16 + v;
          } else if (this.digits === 0) return -2;
          else if (c === 13) this.state = S_SIZE_LF;
          else if (c === 59 || c === 32 || c === 9) this.state = S_EXT;
          else return -2;
          i++;
          break;
        }
        case S_EXT:
          if (c === 13) this.state = S_SIZE_LF;
          else if (c === 10 || ++this.trailerBytes > 4096) return -2;
          i++;
          break;
        case S_SIZE_LF:
          if (c !== 10) return -2;
          this.state = this.size === 0 ? S_LINE_START : S_DATA;
          i++;
          break;
        case S_DATA: {
          const take = Math.min(this.size, end - i);
          this.size -= take;
          i += take;
          if (this.size === 0) this.state = S_DATA_CR;
          break;
        }
        case S_DATA_CR:
          if (c !== 13) return -2;
          this.state = S_DATA_LF;
          i++;
          break;
        case S_DATA_LF:
          if (c !== 10) return -2;
          this.state = S_SIZE;
          this.digits = 0;
          i++;
          break;
        case S_LINE_START:
          this.state = c === 13 ? S_FINAL_LF : S_TRAILER;
          if (c === 10) return -2;
          i++;
          break;
        case S_TRAILER:
          if (++this.trailerBytes > 16_384) return -2;
          if (c === 13) this.state = S_TRAILER_LF;
          i++;
          break;
        case S_TRAILER_LF:
          if (c !== 10) return -2;
          this.state = S_LINE_START;
          i++;
          break;
        case S_FINAL_LF:
          if (c !== 10) return -2;
          this.reset();
          return i + 1;
      }
    }
    return -1;
  }
}
