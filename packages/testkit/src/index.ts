export { freePort, waitForPort } from './ports.ts';
export { alive, startNode, startProcess, type Proc, type ProcessOptions } from './process.ts';
export { processTag, type ProcessTag } from './leaks.ts';
export { startRedis, type RedisAddress, type RedisOptions, type RedisServer } from './redis.ts';
export { startMongo, type MongoOptions, type MongoServer } from './mongo.ts';
export { client, cookieHeader, request, type Client, type HttpRequest, type HttpResult } from './http.ts';
export { sleep, until } from './wait.ts';
export {
  redisCli,
  startRedisCluster,
  type NetnsHost,
  type Reachable,
  type RedisCluster,
  type RedisClusterNode,
  type RedisClusterOptions,
} from './redis-cluster.ts';
export { startRedisSentinel, type RedisSentinel, type RedisSentinelOptions, type SentinelProcess } from './redis-sentinel.ts';
export { needs, oldNode, which } from './binaries.ts';
export { chromiumOptions } from './browser.ts';
export { startPrometheus, type PrometheusOptions, type PrometheusServer, type PromAlert, type PromSample } from './prometheus.ts';
export { testCA, type TestCA, type TestCert } from './certs.ts';
export { steadyLoad, type SteadyLoad } from './steady-load.ts';
export { gc, youngGcSurvival } from './young-gc.ts';
