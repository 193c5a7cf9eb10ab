import { once } from 'node:events';

/**
 * The few Redis operations this package runs itself (beyond connect-redis), over either client family:
 * ioredis (standalone, Sentinel, Cluster) or node-redis v5 (client or cluster). Multi-key work is always per key,
 * so nothing here is cross-slot on a Cluster.
 */
export interface RawRedis {
  readonly kind: 'ioredis' | 'node-redis';
  isReady(): boolean;
  /** Resolves true once ready, false after `ms`; never rejects. */
  waitReady(ms: number): Promise<boolean>;
  onReady(fn: () => void): void;
  onClose(fn: () => void): void;
  onError(fn: (err: Error) => void): void;
  /** Every key matching `pattern`, on every master of a Cluster. */
  scanAll(pattern: string, count: number): Promise<string[]>;
  get(key: string): Promise<string | null>;
  del(key: string): Promise<number>;
  /** SADD member, then extend the set's expiry to at least `ms` (both on one key: one slot). */
  addToSet(key: string, member: string, ms: number): Promise<void>;
  members(key: string): Promise<string[]>;
  /** SREM of the given members (a no-op for an empty list). */
  removeFromSet(key: string, members: string[]): Promise<void>;
  setPx(key: string, value: string, ms: number): Promise<void>;
  /** SET key value PX ms only if the key still holds `expected`, atomically (one script, one slot). */
  replaceIfUnchanged(key: string, expected: string, value: string, ms: number): Promise<boolean>;
  exists(key: string): Promise<boolean>;
  /** EVAL of a Lua script over keys of one slot (hash-tagged on a Cluster). */
  script(source: string, keys: string[], args: string[]): Promise<unknown>;
  /**
   * WAIT on the connection (of a Cluster: the master of `key`) that carried the last writes to `key`: resolves
   * with how many replicas acknowledged them within `ms` (at most `replicas` are waited for).
   */
  confirm(key: string, replicas: number, ms: number): Promise<number>;
  ping(): Promise<void>;
  /** Graceful close, falling back to a hard disconnect when the server is unreachable. */
  close(): Promise<void>;
}

/** Key-space helpers shared with the deny list. `~` never occurs in a generated session id, so no clash with sessions. */
export const userIndexKey = (prefix: string, userId: string) => `${prefix}~user:{${userId}}`;
export const denyKey = (prefix: string, jti: string) => `${prefix}~deny:${jti}`;

const REPLACE_IF_UNCHANGED = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0";

type Fn = (...a: any[]) => any;
type Any = Record<string, any>;

const has = (c: unknown, ...names: string[]) => typeof c === 'object' && c !== null && names.every((n) => typeof (c as Any)[n] === 'function');

/** The first to resolve; when all reject, the first rejection (not an AggregateError without a message). */
function anyOf<T>(promises: Array<Promise<T>>): Promise<T> {
  if (promises.length === 0) return Promise.reject(new Error('no Cluster master is known yet'));
  return Promise.any(promises).catch((err: AggregateError) => Promise.reject(err.errors[0]));
}

function waitEvent(emitter: Any, event: string, ready: () => boolean, ms: number): Promise<boolean> {
  if (ready()) return Promise.resolve(true);
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  return once(emitter as unknown as NodeJS.EventEmitter, event, { signal: ac.signal })
    .then(() => true, () => ready())
    .finally(() => clearTimeout(timer));
}

function fromIoredis(c: Any): RawRedis {
  const nodes = (): Any[] => (c.isCluster ? c.nodes('master') : [c]);
  return {
    kind: 'ioredis',
    isReady: () => c.status === 'ready',
    waitReady: (ms) => waitEvent(c, 'ready', () => c.status === 'ready', ms),
    onReady: (fn) => c.on('ready', fn),
    onClose: (fn) => c.on('close', fn),
    onError: (fn) => c.on('error', fn),
    async scanAll(pattern, count) {
      const keys = new Set<string>();
      for (const node of nodes()) {
        let cursor = '0';
        do {
          const [next, batch] = (await node.scan(cursor, 'MATCH', pattern, 'COUNT', count)) as [string, string[]];
          for (const k of batch) keys.add(k);
          cursor = next;
        } while (cursor !== '0');
      }
      return [...keys];
    },
    get: (key) => c.get(key),
    del: (key) => c.del(key),
    async addToSet(key, member, ms) {
      const replies = ((await c.pipeline().sadd(key, member).pttl(key).exec()) ?? []) as Array<[Error | null, unknown]>;
      for (const [err] of replies) if (err) throw err;
      if (Number(replies[1]?.[1]) < ms) await c.pexpire(key, ms);
    },
    members: (key) => c.smembers(key),
    async removeFromSet(key, members) {
      if (members.length) await c.srem(key, ...members);
    },
    async setPx(key, value, ms) {
      await c.set(key, value, 'PX', ms);
    },
    replaceIfUnchanged: async (key, expected, value, ms) => Number(await c.eval(REPLACE_IF_UNCHANGED, 1, key, expected, value, String(ms))) === 1,
    exists: async (key) => (await c.exists(key)) === 1,
    script: (source, keys, args) => c.eval(source, keys.length, ...keys, ...args),
    async confirm(key, replicas, ms) {
      if (!c.isCluster) return Number(await c.wait(replicas, ms));
      // A Cluster pipeline goes to the key's master over its one connection; the keyless WAIT rides along.
      const replies = ((await c.pipeline().exists(key).wait(replicas, ms).exec()) ?? []) as Array<[Error | null, unknown]>;
      for (const [err] of replies) if (err) throw err;
      return Number(replies[1]?.[1]);
    },
    // On a Cluster any master answering is enough: every instance of the app sees the same cluster, so a health
    // check that failed with one master would only take healthy instances out of rotation.
    ping: async () => void (await (c.isCluster ? anyOf(nodes().map((n) => n.ping())) : c.ping())),
    async close() {
      try {
        await c.quit();
      } catch {
        c.disconnect();
      }
    },
  };
}

function fromNodeRedis(c: Any): RawRedis {
  const isCluster = Array.isArray(c.masters);
  const ready = () => (isCluster ? c.isOpen === true : c.isReady === true);
  return {
    kind: 'node-redis',
    isReady: ready,
    waitReady: (ms) => waitEvent(c, isCluster ? 'connect' : 'ready', ready, ms),
    onReady: (fn) => c.on(isCluster ? 'connect' : 'ready', fn),
    onClose: (fn) => {
      c.on('end', fn);
      if (!isCluster) c.on('reconnecting', fn);
    },
    onError: (fn) => c.on('error', fn),
    async scanAll(pattern, count) {
      const clients: Any[] = isCluster ? await Promise.all((c.masters as unknown[]).map((m) => c.nodeClient(m))) : [c];
      const keys = new Set<string>();
      for (const node of clients) {
        // node-redis 5 yields batches (arrays) of keys.
        for await (const batch of node.scanIterator({ MATCH: pattern, COUNT: count }) as AsyncIterable<string[] | string>) {
          for (const k of ([] as string[]).concat(batch)) keys.add(k);
        }
      }
      return [...keys];
    },
    get: (key) => c.get(key),
    del: (key) => c.del(key),
    async addToSet(key, member, ms) {
      // Issued in the same tick, node-redis pipelines them on one connection.
      const [, pttl] = await Promise.all([c.sAdd(key, member), c.pTTL(key)]);
      if (Number(pttl) < ms) await c.pExpire(key, ms);
    },
    members: (key) => c.sMembers(key),
    async removeFromSet(key, members) {
      if (members.length) await c.sRem(key, members);
    },
    async setPx(key, value, ms) {
      await c.set(key, value, { PX: ms });
    },
    replaceIfUnchanged: async (key, expected, value, ms) =>
      Number(await c.eval(REPLACE_IF_UNCHANGED, { keys: [key], arguments: [expected, value, String(ms)] })) === 1,
    exists: async (key) => Number(await c.exists(key)) === 1,
    script: (source, keys, args) => c.eval(source, { keys, arguments: args }),
    confirm: async (key, replicas, ms) =>
      Number(await (isCluster ? c.sendCommand(key, false, ['WAIT', String(replicas), String(ms)]) : c.sendCommand(['WAIT', String(replicas), String(ms)]))),
    ping: async () => void (await (isCluster ? anyOf((c.masters as unknown[]).map(async (m) => (await c.nodeClient(m)).ping())) : c.ping())),
    async close() {
      try {
        await (c.close ?? c.quit).call(c);
      } catch {
        (c.destroy as Fn | undefined)?.call(c);
      }
    },
  };
}

/** Wraps a user's or our own client; undefined when it is neither ioredis nor node-redis 5. */
export function rawRedis(client: unknown): RawRedis | undefined {
  if (has(client, 'scan', 'sadd', 'pipeline') && typeof (client as Any).status === 'string') return fromIoredis(client as Any);
  if (has(client, 'sAdd', 'pTTL', 'scanIterator') || (has(client, 'nodeClient') && Array.isArray((client as Any).masters))) {
    return fromNodeRedis(client as Any);
  }
  return undefined;
}
