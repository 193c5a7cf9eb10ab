import type { ToPrimary } from './protocol.ts';

/**
 * Fatal startup errors. A worker whose app throws a configuration error (SESSION_STORE=bogus, a missing secret in
 * production, ...) would throw the same error on every restart: restarting it only prints the same stack N times
 * and loops. So the worker reports it to the primary instead, which stops starting workers and says it once.
 */

/** The exit code of a worker that reported a fatal configuration error (sysexits' EX_CONFIG). */
export const CONFIG_EXIT_CODE = 78;

/**
 * A configuration error of this suite: a `code` of the form `CS_ERR_<AREA>_CONFIG` (session, jwt, cluster,
 * balancer, ...). Matched by shape, not class, so a copy of a package loaded twice (dist and src) still counts.
 */
function isConfigError(err: unknown): err is Error & { code: string } {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'string' && /^CS_ERR_[A-Z0-9_]*CONFIG$/.test(code);
}

/**
 * Worker side: an uncaught configuration error goes to the primary as one `fatal` message and the worker exits
 * with CONFIG_EXIT_CODE, before Node prints the stack. Every other uncaught error keeps Node's own handling.
 */
export function reportFatalConfigErrors(send: (msg: ToPrimary) => void): void {
  process.on('uncaughtExceptionMonitor', (err) => {
    if (!isConfigError(err)) return;
    send({ cs: 'fatal', code: err.code, message: err.message });
    // The monitor runs before Node's default handler: exiting here keeps the worker's output free of the stack.
    // The IPC write above is already on the wire (a small message on an idle channel is written synchronously).
    process.exit(CONFIG_EXIT_CODE);
  });
}
