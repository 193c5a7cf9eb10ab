/** Base class of every error this package throws; `code` is stable and safe to branch on. */
export class BalancerError extends Error {
  readonly code: string;
  constructor(message: string, code: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An invalid option given to createBalancer(), exportConfig() or the CLI. The message names option, value and fix. */
export class BalancerConfigError extends BalancerError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, 'CS_ERR_BALANCER_CONFIG', options);
  }
}

/** add/drain/remove named an instance the balancer does not know, or added one twice. */
export class UnknownUpstreamError extends BalancerError {
  constructor(message: string) {
    super(message, 'CS_ERR_BALANCER_UNKNOWN_UPSTREAM');
  }
}

/** The listen or admin address could not be bound. */
export class ListenError extends BalancerError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, 'CS_ERR_BALANCER_LISTEN', options);
  }
}

/**
 * Codes the proxy puts in the JSON body of the answers it writes itself (never a stack trace):
 * clients and tests can tell a balancer 502 from an application 502.
 */
export const ProxyCodes = {
  badRequest: 'CS_ERR_BALANCER_BAD_REQUEST',
  headersTooLarge: 'CS_ERR_BALANCER_HEADERS_TOO_LARGE',
  bodyTooLarge: 'CS_ERR_BALANCER_BODY_TOO_LARGE',
  requestTimeout: 'CS_ERR_BALANCER_REQUEST_TIMEOUT',
  notImplemented: 'CS_ERR_BALANCER_NOT_IMPLEMENTED',
  noUpstream: 'CS_ERR_BALANCER_NO_UPSTREAM',
  badGateway: 'CS_ERR_BALANCER_BAD_GATEWAY',
  gatewayTimeout: 'CS_ERR_BALANCER_GATEWAY_TIMEOUT',
  methodNotAllowed: 'CS_ERR_BALANCER_METHOD_NOT_ALLOWED',
  tooManyConnections: 'CS_ERR_BALANCER_TOO_MANY_CONNECTIONS',
} as const;
