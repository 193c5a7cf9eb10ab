import type { ServerResponse } from 'node:http';

/** The error Node throws for a header set after the headers went out (same code and words as node:_http_outgoing). */
export function headersSentError(): Error {
  return Object.assign(new Error('Cannot set headers after they are sent to the client'), { code: 'ERR_HTTP_HEADERS_SENT' });
}

const HEADER_METHODS = ['setHeader', 'appendHeader', 'removeHeader', 'writeHead', 'setHeaders'] as const;

/** A response made to look sent while its first answer is held (see heldResponse). */
export interface HeldResponse {
  /** Puts the response back as it was (idempotent). */
  release(): void;
  /** Runs `fn` with the response unguarded (the holder's own header work), then guards it again. */
  unguarded<T>(fn: () => T): T;
}

/**
 * A session middleware holds the app's first `res.end()` while it saves the session (a failed save must still
 * change the answer), so for that moment the headers have not really gone out. To the app the response must look
 * as it does under express-session, whose headers are out by then: `headersSent` is true, a header change throws
 * ERR_HTTP_HEADERS_SENT to its caller (`res.json(a); res.json(b)` without a `return`), and a further write or end
 * is dropped instead of reaching Node as a write after end (an 'error' event nobody listens to: a crashed worker).
 */
export function heldResponse(res: ServerResponse): HeldResponse {
  const saved = new Map<string, PropertyDescriptor | undefined>();
  const names = [...HEADER_METHODS, 'write', 'end', 'headersSent'] as const;
  let guarded = false;
  const throwing = () => {
    throw headersSentError();
  };
  const guard = () => {
    if (guarded) return;
    guarded = true;
    for (const name of names) saved.set(name, Object.getOwnPropertyDescriptor(res, name));
    for (const name of HEADER_METHODS) Object.defineProperty(res, name, { value: throwing, configurable: true, writable: true });
    // A write or end after the held end: express-session drops the second end the same way (returns false).
    Object.defineProperty(res, 'write', { value: () => false, configurable: true, writable: true });
    Object.defineProperty(res, 'end', { value: () => res, configurable: true, writable: true });
    Object.defineProperty(res, 'headersSent', { get: () => true, configurable: true });
  };
  const release = () => {
    if (!guarded) return;
    guarded = false;
    for (const name of names) {
      const own = saved.get(name);
      if (own) Object.defineProperty(res, name, own);
      else delete (res as unknown as Record<string, unknown>)[name];
    }
  };
  guard();
  return {
    release,
    unguarded<T>(fn: () => T): T {
      if (!guarded) return fn();
      release();
      try {
        return fn();
      } finally {
        guard();
      }
    },
  };
}
