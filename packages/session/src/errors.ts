/** Base class of every error this package throws: a stable `code` callers can switch on (as undici's UND_ERR_*). */
export class ClusterSessionError extends Error {
  readonly code: string;
  constructor(message: string, code: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A configuration value is wrong: the message names the option, its env variable, the value, what is allowed, the fix. */
export class ConfigError extends ClusterSessionError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, 'CS_ERR_SESSION_CONFIG', options);
  }
}

/** The session store did not answer (down, unreachable or slower than `storeTimeout`). Answered with HTTP 503. */
export class StoreUnavailableError extends ClusterSessionError {
  readonly status = 503;
  readonly expose = true;
  constructor(message: string, options?: ErrorOptions) {
    super(message, 'CS_ERR_SESSION_STORE_UNAVAILABLE', options);
  }
}

/** A session grew past `maxSessionBytes`; it was not written (nothing is half-saved). Answered with HTTP 413. */
export class SessionTooLargeError extends ClusterSessionError {
  readonly status = 413;
  readonly expose = true;
  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number) {
    super(
      `session is ${size} bytes, over the maxSessionBytes limit of ${limit}; it was not saved. ` +
        'Keep large data in a database and only its id in the session, or raise maxSessionBytes.',
      'CS_ERR_SESSION_TOO_LARGE',
    );
    this.size = size;
    this.limit = limit;
  }
}

/** A helper (login, logout) was called on a request that did not pass through clusterSession(). */
export class NoSessionError extends ClusterSessionError {
  constructor(helper: string) {
    super(
      `${helper}() needs req.session: mount app.use(clusterSession(...)) before the route that calls it`,
      'CS_ERR_SESSION_MISSING',
    );
  }
}

/** An operation the configured mode or store cannot do (e.g. listing sessions by user with stateless tokens). */
export class NotSupportedError extends ClusterSessionError {
  constructor(message: string) {
    super(message, 'CS_ERR_SESSION_NOT_SUPPORTED');
  }
}
