import sonicBoom, { type SonicBoom as Boom } from 'sonic-boom';

// sonic-boom is CommonJS whose module.exports is the class: Node's ESM import gives it as the default export.
const SonicBoom = sonicBoom as unknown as typeof Boom;
/** sonic-boom in `contentMode: 'buffer'`, whose write takes a Buffer (its typings only know the string mode). */
type BufferBoom = Omit<Boom, 'write'> & { write(data: Buffer): boolean };

/** What one answered request leaves in the access log. */
interface AccessEntry {
  /** Direct peer address. */
  client: string;
  method: string;
  /** The request target as forwarded (path and query). */
  path: string;
  /** HTTP/1.x minor version. */
  minor: number;
  /** The status the client got; 499 when the client closed before its answer (nginx's word for it). */
  status: number;
  /** Bytes written to the client for this exchange, head included (nginx's $bytes_sent). */
  bytes: number;
  /** host:port of the instance that answered (or was last tried); '-' when none was. */
  upstream: string;
  /** Seconds from the request head to the end of the answer. */
  seconds: number;
  requestId: string;
  /** The request's field lines (CRLF-ended), read only for Referer and User-Agent. */
  headers: string;
}

type AccessLogFormat = 'json' | 'combined';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number) => (n < 10 ? `0${n}` : String(n));

/** nginx's $time_local, in UTC: `01/Dec/2026:12:18:25 +0000`. */
function timeLocal(d: Date): string {
  return `${two(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
}

const REFERER = /(?:^|\r\n)referer:[ \t]*([^\r]*?)[ \t]*\r\n/i;
const USER_AGENT = /(?:^|\r\n)user-agent:[ \t]*([^\r]*?)[ \t]*\r\n/i;

/** One header's value from CRLF-ended field lines ('' when absent). Only runs when the access log is on. */
function field(headers: string, re: RegExp): string {
  return headers === '' ? '' : (re.exec(headers)?.[1] ?? '');
}

/** nginx's escaping in log_format (escape=default): `"`, `\` and bytes outside printable ASCII as \xHH. */
function quoted(s: string): string {
  return s.replace(/["\\\x00-\x1f\x7f-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * The combined format nginx and Apache write, plus three fields nginx users add for a proxy: request time,
 * upstream address and request id. The exported nginx configuration declares the same log_format (export.ts).
 */
function combinedLine(e: AccessEntry, now: Date): string {
  const referer = field(e.headers, REFERER);
  const agent = field(e.headers, USER_AGENT);
  return (
    `${e.client} - - [${timeLocal(now)}] "${quoted(`${e.method} ${e.path} HTTP/1.${e.minor}`)}" ${e.status} ${e.bytes} ` +
    `"${referer ? quoted(referer) : '-'}" "${agent ? quoted(agent) : '-'}" rt=${e.seconds.toFixed(3)} ua="${e.upstream}" rid=${e.requestId || '-'}\n`
  );
}

function jsonLine(e: AccessEntry, now: Date): string {
  const referer = field(e.headers, REFERER);
  const agent = field(e.headers, USER_AGENT);
  return `${JSON.stringify({
    time: now.toISOString(),
    client: e.client,
    method: e.method,
    path: e.path,
    protocol: `HTTP/1.${e.minor}`,
    status: e.status,
    bytes: e.bytes,
    upstream: e.upstream,
    duration: Math.round(e.seconds * 1e6) / 1e6,
    requestId: e.requestId,
    ...(referer ? { referer } : {}),
    ...(agent ? { userAgent: agent } : {}),
  })}\n`;
}

/** Lines gathered before they go to sonic-boom as one batch (see AccessLog.write). */
const BATCH_CHARS = 4096;
/** The longest a gathered line waits at low traffic before it is written. */
const FLUSH_MS = 1000;
/** What may wait for a stalled disk before lines are dropped. */
const MAX_WAITING = 16 * 1024 * 1024;
/** Dropped lines are reported within a second (the flush timer), then at most this often while the disk lags. */
const DROP_REPORT_MS = 60_000;

/**
 * The access log's file (or stdout for `-`), written through sonic-boom (pino's destination), never one write per
 * request: lines gather here into batches of about 4 KiB (or for at most a second) and each batch is one
 * sonic-boom write; `reopen()` opens the path again after logrotate moved the file (SIGUSR1). At most 16 MiB wait
 * for a stalled disk; beyond that batches are dropped, rather than the balancer's memory growing without bound, and
 * their lines counted and reported in the balancer's own log (within a second, then at most once a minute).
 *
 * Why batch before sonic-boom, and in its buffer mode, rather than give it each line as a string with its own
 * minLength: sonic-boom 4.2's string write() takes Buffer.byteLength of the chunk it appends to (up to 16 KiB, a
 * string built by `+=`, so flattened again every time): each line paid a copy of everything gathered so far, about
 * half of its cost. Here a batch is encoded once, and buffer mode only adds up lengths.
 */
export class AccessLog {
  readonly path: string;
  readonly format: AccessLogFormat;
  /** Lines lost to a disk that stayed stalled beyond 16 MiB. */
  dropped = 0;
  private reported = 0;
  private reportedAt = 0;
  private readonly warn: (message: string) => void;
  private readonly out: BufferBoom;
  private readonly line: (e: AccessEntry, now: Date) => string;
  private pending = '';
  private readonly timer: NodeJS.Timeout;

  constructor(path: string, format: AccessLogFormat, warn: (message: string) => void) {
    this.path = path;
    this.format = format;
    this.line = format === 'json' ? jsonLine : combinedLine;
    this.warn = warn;
    this.out = new SonicBoom({
      ...(path === '-' ? { fd: 1 } : { dest: path, mkdir: true }),
      contentMode: 'buffer',
      maxLength: MAX_WAITING,
      // One write takes all that waits, up to 1 MiB: a write completes at most once per event-loop turn, and a turn
      // that answers a thousand requests gathers far more than sonic-boom's default 16 KiB.
      maxWrite: 1024 * 1024,
    }) as unknown as BufferBoom;
    this.out.on('drop', (batch: Buffer) => {
      for (let i = batch.indexOf(10); i !== -1; i = batch.indexOf(10, i + 1)) this.dropped++;
    });
    this.out.on('error', (err: Error) => warn(`access log ${path}: ${err.message}`));
    this.timer = setInterval(() => {
      this.flush();
      this.report();
    }, FLUSH_MS).unref();
  }

  write(entry: AccessEntry): void {
    this.pending += this.line(entry, new Date());
    if (this.pending.length >= BATCH_CHARS) this.flush();
  }

  /** Within a second of the first drop, then at most once a minute, and at close: never once per line. */
  private report(closing = false): void {
    if (this.dropped === this.reported) return;
    const now = Date.now();
    if (!closing && now - this.reportedAt < DROP_REPORT_MS) return;
    const lost = this.dropped - this.reported;
    const lines = `${lost} line${lost === 1 ? '' : 's'}`;
    this.warn(`access log ${this.path}: ${lines} dropped, the disk is not keeping up (${MAX_WAITING / 1048576} MiB wait to be written; ${this.dropped} in all)`);
    this.reported = this.dropped;
    this.reportedAt = now;
  }

  /** Hands the gathered lines to sonic-boom, which writes them now or after the write in progress. */
  private flush(): void {
    if (this.pending === '') return;
    const batch = this.pending;
    this.pending = '';
    this.out.write(Buffer.from(batch));
  }

  /** After logrotate renamed the file: write to a new one at the same path (stdout has nothing to reopen). */
  reopen(): void {
    if (this.path !== '-') this.out.reopen();
  }

  /** Writes what is buffered and closes the file. */
  close(): Promise<void> {
    clearInterval(this.timer);
    this.flush();
    this.report(true);
    return new Promise((resolve) => {
      if (this.path === '-') {
        // stdout stays open for whoever writes after us; what is buffered goes now.
        try {
          this.out.flushSync();
        } catch {
          // a closed stdout: nothing more can be written anyway
        }
        return resolve();
      }
      this.out.once('close', () => resolve());
      this.out.once('error', () => resolve());
      this.out.end();
    });
  }
}
