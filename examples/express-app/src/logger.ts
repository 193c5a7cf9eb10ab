/**
 * The app's log: pino (JSON lines, the Node ecosystem's standard) and pino-http (one line per answered request,
 * carrying the request id the balancer set in X-Request-Id, so a request can be followed from the balancer's
 * access log to the worker that served it). LOG_LEVEL picks the level (pino's names, default info); LOG_FORMAT
 * `json` (set by `cluster-session start --log-format json`) writes pino's lines as they are, `text` (default)
 * one readable line each. Only the request line, status and id are logged: never cookies or other headers.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pino, type DestinationStream, type Logger } from 'pino';
import { pinoHttp, type HttpLogger } from 'pino-http';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** What the balancer sends (a UUID) or a trusted proxy's id: printable, short. Anything else gets a new id. */
const REQUEST_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

type Env = Readonly<Record<string, string | undefined>>;

/** Refused LOG_LEVEL/LOG_FORMAT: the app's start reports it in one line with the fix. */
export class LogConfigError extends Error {
  readonly fix: string;
  constructor(message: string, fix: string) {
    super(message);
    this.fix = fix;
  }
}

/** `text`: pino's object as `<time> <LEVEL> <msg> key=value...`, one line (the cluster prefixes slot and pid). */
function textLines(out: NodeJS.WritableStream): DestinationStream {
  return {
    write(line: string) {
      const { level, time, msg, pid: _pid, hostname: _host, ...rest } = JSON.parse(line) as Record<string, unknown>;
      const extra = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
      out.write(`${NAMES[level as number] ?? String(level)} ${String(msg ?? '')}${extra.length ? ` ${extra.join(' ')}` : ''}\n`);
      void time; // the cluster (or the terminal) timestamps text lines
    },
  };
}

export function createLogger(env: Env = process.env, out: NodeJS.WritableStream = process.stdout): Logger {
  const level = env.LOG_LEVEL?.trim() || 'info';
  if (!(LEVELS as readonly string[]).includes(level)) {
    throw new LogConfigError(`LOG_LEVEL is ${JSON.stringify(level)}: expected one of ${LEVELS.join(', ')}`, 'set LOG_LEVEL=info (or unset it)');
  }
  const format = env.LOG_FORMAT?.trim() || 'text';
  if (format !== 'text' && format !== 'json') {
    throw new LogConfigError(`LOG_FORMAT is ${JSON.stringify(format)}: expected text or json`, 'set LOG_FORMAT=json (or unset it for text)');
  }
  return pino({ level, base: { pid: process.pid } }, format === 'json' ? (out as DestinationStream) : textLines(out));
}

/** The request id: the balancer's X-Request-Id when it is a plausible id, else a new one. */
function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

/** One line per answered request (health checks excepted: the balancer polls them every few seconds). */
export function requestLogger(logger: Logger): HttpLogger {
  return pinoHttp({
    logger,
    genReqId: (req: IncomingMessage, res: ServerResponse) => {
      const id = requestId(req);
      res.setHeader('X-Request-Id', id);
      return id;
    },
    autoLogging: { ignore: (req: IncomingMessage) => req.url === '/healthz' },
    // Only what identifies the request: headers carry the session cookie, which must never reach a log.
    serializers: {
      req: (req: { id: unknown; method: string; url: string }) => ({ id: req.id, method: req.method, url: req.url }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
    customSuccessMessage: (req: IncomingMessage, res: ServerResponse) => `${req.method} ${req.url} ${res.statusCode}`,
    customErrorMessage: (req: IncomingMessage, res: ServerResponse) => `${req.method} ${req.url} ${res.statusCode}`,
  });
}
