import type { AccessLog } from './access-log.ts';
import type { Tally } from './metrics.ts';
import type { BalancerConfig } from './options.ts';
import type { Limiter } from './rate-limit.ts';
import type { ConnCounts } from './shared-limits.ts';
import type { Selector } from './strategy.ts';

/** A connection the timeout sweep looks at. `deadline` 0 means no timer runs. */
export interface Timed {
  deadline: number;
  onTimeout(): void;
  destroy(): void;
}

/** State shared by every connection of one balancer. */
export interface ProxyContext {
  /** Replaced as a whole by reconfigure() (a SIGHUP): a connection reads it per use, never keeps a copy. */
  config: BalancerConfig;
  selector: Selector;
  /** The access log, or null (the I/O path then does nothing more per request than test this). */
  access: AccessLog | null;
  /**
   * Coarse clock, refreshed by the timeout sweep (like nginx's cached time): setting a deadline per request costs
   * an addition instead of a timer.
   */
  now: number;
  closing: boolean;
  readonly clients: Set<Timed>;
  readonly origins: Set<Timed>;
  readonly totals: { connections: number; requests: number; rejected: number };
  /** Open client connections by client address (limits.perClient); shared between threads in `workers` mode. */
  readonly perClient: ConnCounts;
  /** Record answers for /metrics (the admin server is on). */
  readonly metrics: boolean;
  /** The balancer's own answers to requests no instance was tried for. */
  readonly own: Tally;
  /** The per-client token bucket (rateLimit), when on. Replaced by reconfigure() when rateLimit changes. */
  limiter: Limiter | undefined;
  /** Makes the limiter for a rateLimit: in-process alone, over shared memory in a worker thread. */
  newLimiter(rate: Exclude<BalancerConfig['rateLimit'], false>): Limiter;
  /** Field lines the balancer adds to every proxied answer (Strict-Transport-Security), '' for none. */
  readonly addHeaders: string;
  log(message: string): void;
  /** Seconds a client should wait before trying again when no instance is available. */
  retryAfter(): number;
}

const TEXT: Record<number, string> = {
  400: 'Bad Request',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Content Too Large',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};

/**
 * A complete answer the balancer writes itself: small JSON naming the code, never a stack trace. An answer to HEAD
 * carries the length but no body, or the client would read the body as the next answer.
 */
export function errorResponse(status: number, code: string, reason: string, close: boolean, retryAfter = 0, head = false): string {
  const body = `{"error":${JSON.stringify(reason)},"code":"${code}"}`;
  return (
    `HTTP/1.1 ${status} ${TEXT[status] ?? 'Error'}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    'Cache-Control: no-store\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    (retryAfter > 0 ? `Retry-After: ${retryAfter}\r\n` : '') +
    (close ? 'Connection: close\r\n' : '') +
    `\r\n${head ? '' : body}`
  );
}
