import type { ResolvedConfig } from './config.ts';
import type { StoreHandle } from './stores/types.ts';
import type { ClusterSession } from './types.ts';

/**
 * The resolved configuration (secrets included) behind a clusterSession() middleware, under a private symbol and
 * non-enumerable: helpers that need the same store (loginThrottle) take the middleware rather than a second copy
 * of the options, and nothing that walks or logs the middleware sees a secret. Helpers also register what
 * `sessions.close()` must close with them (their own store clients), so an app's shutdown stays one call.
 */
const kResolved = Symbol('cluster-session.resolved-config');
const kClosers = Symbol('cluster-session.closers');
const kHandle = Symbol('cluster-session.store-handle');

type Internals = { [kResolved]?: ResolvedConfig; [kClosers]?: Array<() => Promise<void>>; [kHandle]?: StoreHandle };

export function attachConfig(middleware: ClusterSession, config: ResolvedConfig): ClusterSession {
  const closers: Array<() => Promise<void>> = [];
  Object.defineProperty(middleware, kResolved, { value: config, enumerable: false });
  Object.defineProperty(middleware, kClosers, { value: closers, enumerable: false });
  const close = middleware.close;
  return Object.assign(middleware, {
    close: async () => {
      await Promise.all([close.call(middleware), ...closers.splice(0).map((fn) => fn())]);
    },
  });
}

export function configOf(sessions: ClusterSession, helper: string): ResolvedConfig {
  const config = (sessions as unknown as Internals | undefined)?.[kResolved];
  if (!config) throw new TypeError(`${helper}() takes the middleware clusterSession() returned: ${helper}(sessions, options)`);
  return config;
}

/** Runs `fn` when `sessions.close()` is called. */
export function closeWith(sessions: ClusterSession, fn: () => Promise<void>): void {
  (sessions as unknown as Internals)[kClosers]?.push(fn);
}

/** Store mode keeps its store handle here, for listSessions() and logoutEverywhere(..., { except }). */
export function attachHandle<T extends object>(middleware: T, handle: StoreHandle): T {
  Object.defineProperty(middleware, kHandle, { value: handle, enumerable: false });
  return middleware;
}

/** The store handle of a store-mode middleware; undefined in JWT mode. */
export function handleOf(sessions: ClusterSession): StoreHandle | undefined {
  return (sessions as unknown as Internals | undefined)?.[kHandle];
}
