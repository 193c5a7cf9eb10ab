export { createBalancer, type Balancer, type BalancerStatus, type CreateBalancerOptions, type ReconfigureReport } from './balancer.ts';
export { exportConfig, type ExportTarget } from './export.ts';
export {
  BalancerError,
  BalancerConfigError,
  ListenError,
  UnknownUpstreamError,
  BadRequestError,
  HeadersTooLargeError,
  BodyTooLargeError,
  RequestTimeoutError,
  NotImplementedError,
  NoUpstreamError,
  BadGatewayError,
  GatewayTimeoutError,
  MethodNotAllowedError,
  TooManyConnectionsError,
  RateLimitedError,
  ProxyCodes,
  type BalancerErrorCode,
} from './errors.ts';
export { STRATEGIES, type BalancerOptions, type HealthOptions, type Strategy, type UpstreamInput } from './options.ts';
export type { UpstreamStatus } from './upstream.ts';
