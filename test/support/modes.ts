/**
 * The session setups the deployment suites run against, configured by environment as the starter reads it. Each
 * mode starts its own store server (a private redis-server, the MongoDB-compatible server) when the suite's
 * before() asks for its env, and stops it in cleanup().
 */
import { startMongo, startRedis, type MongoServer, type RedisServer } from '@cluster-session/testkit';

export interface Mode {
  readonly name: string;
  env(): Promise<Record<string, string>>;
  cleanup(): Promise<void>;
}

const none = async () => {};

function redisMode(): Mode {
  let redis: RedisServer | undefined;
  return {
    name: 'redis store',
    env: async () => {
      redis = await startRedis();
      return { SESSION_STORE: 'redis', REDIS_URL: redis.url };
    },
    cleanup: async () => redis?.close(),
  };
}

function mongoMode(): Mode {
  let mongo: MongoServer | undefined;
  return {
    name: 'mongo store',
    env: async () => {
      mongo = await startMongo();
      return { SESSION_STORE: 'mongo', MONGO_URL: mongo.url };
    },
    cleanup: async () => mongo?.close(),
  };
}

const FACTORIES = {
  sqlite: (): Mode => ({ name: 'sqlite store', env: async () => ({ SESSION_STORE: 'sqlite' }), cleanup: none }),
  redis: redisMode,
  mongo: mongoMode,
  jwt: (): Mode => ({ name: 'jwt mode', env: async () => ({ SESSION_MODE: 'jwt' }), cleanup: none }),
};

/** The named modes, each with its own store server. */
export function modes(...names: Array<keyof typeof FACTORIES>): Mode[] {
  return names.map((n) => FACTORIES[n]());
}
