/**
 * `@cluster-session/session/stores`: the store classes, for use with plain express-session. A subpath of its own
 * because each class extends its driver's store: importing it loads connect-redis, connect-mongo and mongodb,
 * which `clusterSession()` otherwise loads only for the store its config names.
 */
export { SqliteStore } from './stores/sqlite.ts';
export { ClusterRedisStore } from './stores/redis-store.ts';
export { ClusterMongoStore } from './stores/mongo-store.ts';
export { failFastOptions } from './stores/redis.ts';
