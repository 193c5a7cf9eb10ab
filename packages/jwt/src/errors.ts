import { ClusterSessionError } from '@cluster-session/core';

/** Every code this package throws or answers with (one class each, below). */
export type JwtErrorCode =
  | 'CS_ERR_JWT_CONFIG'
  | 'CS_ERR_JWT_INVALID'
  | 'CS_ERR_JWT_REVOKED'
  | 'CS_ERR_JWT_TOO_LARGE'
  | 'CS_ERR_JWT_RESERVED_CLAIM'
  | 'CS_ERR_JWT_SAVE'
  | 'CS_ERR_JWT_DENYLIST_UNAVAILABLE'
  | 'CS_ERR_JWT_HEADERS_SENT';

/** The family of every error this package throws: a stable `code` callers can switch on (as undici's UND_ERR_*). */
export class JwtError extends ClusterSessionError<JwtErrorCode> {
  static override readonly family = 'CS_ERR_JWT_';
}

/**
 * A key or option is wrong. Thrown once, at startup: the message names the option (and env variable), the value
 * given (never a secret's value, only its size), what is allowed, and the fix.
 */
export class JwtConfigError extends JwtError {
  static override readonly code = 'CS_ERR_JWT_CONFIG';
}

/**
 * A token was refused. `reason` is a short stable word (expired, signature, kid, alg, header, claim, malformed,
 * too_large, revoked) for logs and metrics; the middleware turns it into a logged-out request, never a 500.
 */
export class JwtInvalidError extends JwtError {
  static override readonly code = 'CS_ERR_JWT_INVALID';
  readonly reason: string;
  constructor(reason: string, message: string, options?: ErrorOptions) {
    super(`token refused (${reason}): ${message}`, options);
    this.reason = reason;
  }
}

/** The token was revoked (its jti is on the deny list). */
export class JwtRevokedError extends JwtError {
  static override readonly code = 'CS_ERR_JWT_REVOKED';
  constructor() {
    super('token refused (revoked): this session was logged out');
  }
}

/**
 * The session would make a token over the transport's limit (4096 bytes for the whole Set-Cookie line). Nothing
 * was issued: the previous token stays in place. Answered with HTTP 413 when no callback can take the error.
 */
export class JwtTooLargeError extends JwtError {
  static override readonly code = 'CS_ERR_JWT_TOO_LARGE';
  readonly status = 413;
  readonly expose = true;
  readonly publicMessage = 'session too large';
  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number, what: string) {
    super(
      `session token would make a ${what} of ${size} bytes, over the ${limit}-byte limit; it was not issued. ` +
        'Keep large data in a database and only its id in the session.',
    );
    this.size = size;
    this.limit = limit;
  }
}

/** A session claim uses a name the token itself needs (exp, iat, jti...). */
export class JwtReservedClaimError extends JwtError {
  static override readonly code = 'CS_ERR_JWT_RESERVED_CLAIM';
  readonly status = 500;
  readonly publicMessage = 'session could not be saved';
  constructor(name: string) {
    super(`req.session.${name} cannot be stored: "${name}" is a registered token claim managed by the session. Rename the property.`);
  }
}

/** Issuing the token failed for another reason (session data JSON cannot encode, a signing failure): HTTP 500. */
export class JwtSaveError extends JwtError {
  static override readonly code = 'CS_ERR_JWT_SAVE';
  readonly status = 500;
  readonly publicMessage = 'session could not be saved';
}

/** The deny list did not answer in time; revocation cannot be checked, so the request is refused (HTTP 503). */
export class JwtDenyListUnavailableError extends JwtError {
  static override readonly code = 'CS_ERR_JWT_DENYLIST_UNAVAILABLE';
  readonly status = 503;
  readonly expose = true;
  readonly publicMessage = 'session store unavailable';
}

/** save() or regenerate() after the response headers were sent: the new token can no longer reach the client. */
export class JwtHeadersSentError extends JwtError {
  static override readonly code = 'CS_ERR_JWT_HEADERS_SENT';
  constructor(method: string) {
    super(
      `req.session.${method}() after the response headers were sent: the token cannot be delivered. ` +
        'Call it (and await its callback) before res.send()/res.json().',
    );
  }
}
