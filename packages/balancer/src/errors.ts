import { ClusterSessionError } from '@cluster-session/core';

/** Every code this package throws or answers with (one class each, below). */
export type BalancerErrorCode =
  | 'CS_ERR_BALANCER_CONFIG'
  | 'CS_ERR_BALANCER_UNKNOWN_UPSTREAM'
  | 'CS_ERR_BALANCER_LISTEN'
  | 'CS_ERR_BALANCER_BAD_REQUEST'
  | 'CS_ERR_BALANCER_HEADERS_TOO_LARGE'
  | 'CS_ERR_BALANCER_BODY_TOO_LARGE'
  | 'CS_ERR_BALANCER_REQUEST_TIMEOUT'
  | 'CS_ERR_BALANCER_NOT_IMPLEMENTED'
  | 'CS_ERR_BALANCER_NO_UPSTREAM'
  | 'CS_ERR_BALANCER_BAD_GATEWAY'
  | 'CS_ERR_BALANCER_GATEWAY_TIMEOUT'
  | 'CS_ERR_BALANCER_METHOD_NOT_ALLOWED'
  | 'CS_ERR_BALANCER_TOO_MANY_CONNECTIONS'
  | 'CS_ERR_BALANCER_RATE_LIMITED';

/** The family of every error this package throws or answers with; `code` is stable and safe to branch on. */
export class BalancerError extends ClusterSessionError<BalancerErrorCode> {
  static override readonly family = 'CS_ERR_BALANCER_';
}

/** An invalid option given to createBalancer(), exportConfig() or the CLI. The message names option, value and fix. */
export class BalancerConfigError extends BalancerError {
  static override readonly code = 'CS_ERR_BALANCER_CONFIG';
}

/** add/drain/remove named an instance the balancer does not know, or added one twice. */
export class UnknownUpstreamError extends BalancerError {
  static override readonly code = 'CS_ERR_BALANCER_UNKNOWN_UPSTREAM';
}

/** The listen or admin address could not be bound. */
export class ListenError extends BalancerError {
  static override readonly code = 'CS_ERR_BALANCER_LISTEN';
}

/*
 * The answers the proxy writes itself, as the JSON error answer of @cluster-session/core: clients and tests can
 * tell a balancer 502 from an application 502 by the code. The I/O path writes them as bytes (it never throws or
 * allocates one of these per request); the classes define the code and the status of each, once.
 */

export class BadRequestError extends BalancerError {
  static override readonly code = 'CS_ERR_BALANCER_BAD_REQUEST';
  static readonly status = 400;
}
export class HeadersTooLargeError extends BalancerError {
  static override readonly code = 'CS_ERR_BALANCER_HEADERS_TOO_LARGE';
  static readonly status = 431;
}
export class BodyTooLargeError extends BalancerError {
  static override readonly code = 'CS_ERR_BALANCER_BODY_TOO_LARGE';
  static readonly status = 413;
}
export class RequestTimeoutError extends BalancerError {
  static override readonly code = 'CS_ERR_BALANCER_REQUEST_TIMEOUT';
  static readonly status = 408;
}
export class NotImplementedError extends BalancerError {
  static override readonly code = 'CS_ERR_BALANCER_NOT_IMPLEMENTED';
  static readonly status = 501;
}
export class NoUpstreamError extends BalancerError {
  static override readonly code = 'CS_ERR_BALANCER_NO_UPSTREAM';
  static readonly status = 503;
}
export class BadGatewayError extends BalancerError {
  static override readonly code = 'CS_ERR_BALANCER_BAD_GATEWAY';
  static readonly status = 502;
}
export class GatewayTimeoutError extends BalancerError {
  static override readonly code = 'CS_ERR_BALANCER_GATEWAY_TIMEOUT';
  static readonly status = 504;
}
export class MethodNotAllowedError extends BalancerError {
  static override readonly code = 'CS_ERR_BALANCER_METHOD_NOT_ALLOWED';
  static readonly status = 405;
}
export class TooManyConnectionsError extends BalancerError {
  static override readonly code = 'CS_ERR_BALANCER_TOO_MANY_CONNECTIONS';
  static readonly status = 429;
}

export class RateLimitedError extends BalancerError {
  static override readonly code = 'CS_ERR_BALANCER_RATE_LIMITED';
  static readonly status = 429;
}

/** The codes of the proxy's own answers, by name (what client.ts writes). */
export const ProxyCodes = {
  badRequest: BadRequestError.code,
  headersTooLarge: HeadersTooLargeError.code,
  bodyTooLarge: BodyTooLargeError.code,
  requestTimeout: RequestTimeoutError.code,
  notImplemented: NotImplementedError.code,
  noUpstream: NoUpstreamError.code,
  badGateway: BadGatewayError.code,
  gatewayTimeout: GatewayTimeoutError.code,
  methodNotAllowed: MethodNotAllowedError.code,
  tooManyConnections: TooManyConnectionsError.code,
  rateLimited: RateLimitedError.code,
} as const;
