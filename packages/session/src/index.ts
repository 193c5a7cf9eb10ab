export { clusterSession } from './cluster-session.ts';
export type { ClusterSession, SessionHealth } from './types.ts';
export { checkConfig } from './check.ts';
export { login, logout, logoutEverywhere, listSessions, logoutSession, type LoginOptions, type LogoutEverywhereOptions } from './helpers.ts';
export type { SessionInfo } from './session-meta.ts';
export {
  resolveConfig,
  type SessionConfigInput,
  type ClusterSessionConfig,
  type SessionConfigView,
  type ResolvedConfig,
  type ResolvedStore,
  type StoreInput,
  type StoreName,
  type CookieInput,
  type Logger,
} from './config.ts';
export { loginThrottle, type LoginThrottle, type LoginAttempt, type LoginThrottleOptions, type ResolvedLoginThrottleOptions } from './throttle.ts';
export { csrf, type CsrfOptions, type CsrfProtection } from './csrf.ts';
export { createDenyList } from './stores/index.ts';
export { redactUrl } from './stores/url.ts';
export type { DenyList } from './stores/types.ts';
export {
  ClusterSessionError,
  SessionError,
  ConfigError,
  StoreUnavailableError,
  SessionTooLargeError,
  SessionSaveError,
  NoSessionError,
  NotSupportedError,
  LoginThrottledError,
  CsrfError,
  type SessionErrorCode,
} from './errors.ts';
// No driver is loaded here: each store's loads when clusterSession() creates that store. The store classes live
// in the '@cluster-session/session/stores' subpath for the same reason.
export { failFastOptions } from './stores/redis.ts';
