export { clusterSession, type ClusterSession, type SessionHealth } from './middleware.ts';
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
export { SqliteStore } from './stores/sqlite.ts';
export { ClusterRedisStore, failFastOptions } from './stores/redis.ts';
export { ClusterMongoStore } from './stores/mongo.ts';
