export { createBalancer, type Balancer, type BalancerStatus, type CreateBalancerOptions } from './balancer.ts';
export { exportConfig, type ExportTarget } from './export.ts';
export { BalancerConfigError, BalancerError, ListenError, ProxyCodes, UnknownUpstreamError } from './errors.ts';
export { STRATEGIES, type BalancerOptions, type HealthOptions, type Strategy, type UpstreamInput } from './options.ts';
export type { UpstreamStatus } from './upstream.ts';
