export { clusterSession, type ClusterSession, type SessionHealth } from './middleware.ts';
export { checkConfig } from './check.ts';
export { login, logout, logoutEverywhere, type LoginOptions } from './helpers.ts';
export {
  resolveConfig,
  type SessionConfigInput,
  type ClusterSessionConfig,
  type ResolvedConfig,
  type ResolvedStore,
  type StoreInput,
  type StoreName,
  type CookieInput,
  type Logger,
} from './config.ts';
export { createDenyList, type DenyList } from './revocation.ts';
export {
  ClusterSessionError,
  ConfigError,
  StoreUnavailableError,
  SessionTooLargeError,
  NoSessionError,
  NotSupportedError,
} from './errors.ts';
// No driver is loaded here: each store's loads when clusterSession() creates that store. The store classes live
// in the '@cluster-session/session/stores' subpath for the same reason.
export { failFastOptions } from './stores/redis.ts';
