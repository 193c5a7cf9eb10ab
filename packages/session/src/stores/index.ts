import { deadline } from '@cluster-session/core';
import type { ResolvedConfig } from '../config.ts';
import { StoreUnavailableError } from '../errors.ts';
import { createCustomHandle, customDenyList } from './custom.ts';
import { createMemoryHandle, memoryDenyList } from './memory.ts';
import { createMongoHandle, mongoDenyList } from './mongo.ts';
import { createRedisHandle, redisDenyList } from './redis.ts';
import { createSqliteHandle, sqliteDenyList } from './sqlite.ts';
import { denyListView, type DenyFeed } from './deny-view.ts';
import type { DenyList, StoreHandle } from './types.ts';

export function createStoreHandle(config: ResolvedConfig): StoreHandle {
  switch (config.store.type) {
    case 'redis':
      return createRedisHandle(config);
    case 'mongo':
      return createMongoHandle(config);
    case 'sqlite':
      return createSqliteHandle(config);
    case 'memory':
      return createMemoryHandle(config);
    case 'custom':
      return createCustomHandle(config, config.store.instance);
  }
}

/**
 * A deny list for revoked JWTs on the configured store (Redis SET PX, a MongoDB collection, a SQLite table, or a
 * process-local map), each entry expiring with its token. Calls are bounded by `storeTimeout`.
 */
export function createDenyList(config: ResolvedConfig): DenyList {
  const s = config.store;
  const list =
    s.type === 'redis'
      ? redisDenyList(config)
      : s.type === 'mongo'
        ? mongoDenyList(config as ResolvedConfig & { store: typeof s })
        : s.type === 'sqlite'
          ? sqliteDenyList(config as ResolvedConfig & { store: typeof s })
          : s.type === 'custom'
            ? customDenyList(s.instance)
            : memoryDenyList();
  const bounded = <T>(work: Promise<T>, what: string) =>
    deadline(work, config.storeTimeout, () => new StoreUnavailableError(`${s.type} deny list ${what} did not answer within ${config.storeTimeout} ms`));
  const exact: DenyList = {
    add: (jti, exp) => bounded(list.add(jti, exp), 'add'),
    has: (jti) => bounded(Promise.resolve(list.has(jti)), 'has'),
    close: () => list.close(),
  };
  if (!isFeed(list)) return exact;
  // Stores with a stamp: each process keeps the list in memory and polls the stamp, no lookup per request.
  return denyListView(exact, { stamp: () => bounded(list.stamp(), 'stamp'), live: () => bounded(list.live(), 'live') });
}

const isFeed = (list: DenyList): list is DenyList & DenyFeed =>
  typeof (list as Partial<DenyFeed>).stamp === 'function' && typeof (list as Partial<DenyFeed>).live === 'function';
