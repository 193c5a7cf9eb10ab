import { ClusterSessionError } from '@cluster-session/core';

export { ClusterSessionError };

/** Every code this package throws or answers with (one class each, below). */
export type SessionErrorCode =
  | 'CS_ERR_SESSION_CONFIG'
  | 'CS_ERR_SESSION_STORE_UNAVAILABLE'
  | 'CS_ERR_SESSION_TOO_LARGE'
  | 'CS_ERR_SESSION_SAVE'
  | 'CS_ERR_SESSION_MISSING'
  | 'CS_ERR_SESSION_NOT_SUPPORTED'
  | 'CS_ERR_SESSION_LOGIN_THROTTLED'
  | 'CS_ERR_SESSION_CSRF';

/** The family of every error this package throws: a stable `code` callers can switch on (as undici's UND_ERR_*). */
export class SessionError extends ClusterSessionError<SessionErrorCode> {
  static override readonly family = 'CS_ERR_SESSION_';
}

/** A configuration value is wrong: the message names the option, its env variable, the value, what is allowed, the fix. */
export class ConfigError extends SessionError {
  static override readonly code = 'CS_ERR_SESSION_CONFIG';
}

/** The session store did not answer (down, unreachable or slower than `storeTimeout`). Answered with HTTP 503. */
export class StoreUnavailableError extends SessionError {
  static override readonly code = 'CS_ERR_SESSION_STORE_UNAVAILABLE';
  readonly status = 503;
  readonly expose = true;
  readonly publicMessage = 'session store unavailable';
}

/** A session grew past `maxSessionBytes`; it was not written (nothing is half-saved). Answered with HTTP 413. */
export class SessionTooLargeError extends SessionError {
  static override readonly code = 'CS_ERR_SESSION_TOO_LARGE';
  readonly status = 413;
  readonly expose = true;
  readonly publicMessage = 'session too large';
  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number) {
    super(
      `session is ${size} bytes, over the maxSessionBytes limit of ${limit}; it was not saved. ` +
        'Keep large data in a database and only its id in the session, or raise maxSessionBytes.',
    );
    this.size = size;
    this.limit = limit;
  }
}

/** Saving a changed session failed for another reason than the store being down (a bug in a store): HTTP 500. */
export class SessionSaveError extends SessionError {
  static override readonly code = 'CS_ERR_SESSION_SAVE';
  readonly status = 500;
  readonly publicMessage = 'session could not be saved';
}

/** A helper (login, logout) was called on a request that did not pass through clusterSession(). */
export class NoSessionError extends SessionError {
  static override readonly code = 'CS_ERR_SESSION_MISSING';
  constructor(helper: string) {
    super(`${helper}() needs req.session: mount app.use(clusterSession(...)) before the route that calls it`);
  }
}

/** An operation the configured mode cannot do (listing sessions by user with stateless tokens). */
export class NotSupportedError extends SessionError {
  static override readonly code = 'CS_ERR_SESSION_NOT_SUPPORTED';
}

/**
 * loginThrottle(): too many failed logins for this account or from this address; answered with HTTP 429 and
 * Retry-After before any password work. The client is not told which of the two is locked.
 */
export class LoginThrottledError extends SessionError {
  static override readonly code = 'CS_ERR_SESSION_LOGIN_THROTTLED';
  readonly status = 429;
  readonly expose = true;
  readonly publicMessage = 'too many failed login attempts; try again later';
  /** Seconds until the lock ends. */
  readonly retryAfter: number;
  /** What is locked (for logs and metrics, never sent to the client). */
  readonly locked: 'account' | 'address';
  constructor(locked: 'account' | 'address', retryAfter: number) {
    super(`login throttled: this ${locked} is locked for ${retryAfter} s after repeated failed logins`);
    this.locked = locked;
    this.retryAfter = Math.max(1, retryAfter);
  }
}

/** csrf(): a state-changing request without a valid token, or sent cross-site (Origin / Sec-Fetch-Site). HTTP 403. */
export class CsrfError extends SessionError {
  static override readonly code = 'CS_ERR_SESSION_CSRF';
  readonly status = 403;
  readonly expose = true;
  readonly publicMessage: string;
  constructor(reason: string, publicMessage = 'cross-site request refused') {
    super(`csrf: ${reason}`);
    this.publicMessage = publicMessage;
  }
}
