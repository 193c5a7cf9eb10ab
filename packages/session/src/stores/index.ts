import type { ResolvedConfig } from '../config.ts';
import { createMemoryHandle } from './memory.ts';
import { createMongoHandle } from './mongo.ts';
import { createRedisHandle } from './redis.ts';
import { createSqliteHandle } from './sqlite.ts';
import type { StoreHandle } from './types.ts';

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
  }
}
