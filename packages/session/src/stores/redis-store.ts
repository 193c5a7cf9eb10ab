import { RedisStore } from 'connect-redis';
import type { SessionData } from 'express-session';
import type { Logger } from '../config.ts';
import { ConfigError } from '../errors.ts';
import { loadedOf, parseSession, setLoaded, userOf, expiresAt } from '../serializer.ts';
import { slot } from '../side.ts';
import { denyKey, rawRedis, userIndexKey, type RawRedis } from './redis-client.ts';

type Cb = (err?: unknown, data?: any) => void;

async function inChunks<T, R>(items: T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

function reply<T>(cb: Cb | undefined, p: Promise<T>): Promise<T> {
  if (!cb) return p;
  p.then((v) => cb(null, v), (e) => cb(e));
  return p;
}

/**
 * Where a session's user index entry stands, so a save need not rewrite it: the stored value carries it as
 * `"~idx": { u, e }` (stripped again on load) and the loaded Session keeps it under a symbol, with the id it was
 * loaded under. `exp` is a lower bound of the index key's expiry.
 */
interface IndexStamp {
  sid: string;
  user: string;
  exp: number;
}
const STAMP = '~idx';
/** Beside the session object (side.ts: the session stays plain and set() never adds a key to the caller's object). */
const stamps = slot<IndexStamp | Omit<IndexStamp, 'sid'>>('stamp');
const stampOf = (sess: object) => stamps.get(sess);
function setStamp(sess: object, stamp: IndexStamp | Omit<IndexStamp, 'sid'> | undefined): void {
  if (stamp) stamps.set(sess, stamp);
  else stamps.delete(sess);
}

function stringify(sess: SessionData): string {
  const st = stampOf(sess);
  return JSON.stringify(st ? { ...sess, [STAMP]: { u: st.user, e: st.exp } } : sess);
}

function parse(text: string, logger: Logger): SessionData | null {
  const sess = parseSession(text, logger) as (SessionData & { [STAMP]?: { u?: unknown; e?: unknown } }) | null;
  if (sess) setLoaded(sess, text);
  if (!sess || !(STAMP in sess)) return sess;
  const { u, e } = sess[STAMP] ?? {};
  delete sess[STAMP];
  if (typeof u === 'string' && typeof e === 'number') setStamp(sess, { user: u, exp: e });
  return sess;
}

/**
 * connect-redis 8 with what it lacks: Cluster-aware ids/all/length/clear (SCAN every master, per-key commands, so
 * no CROSSSLOT), a per-user index for logoutEverywhere() (hash-tagged set, one slot per user), and a parser that
 * treats a corrupt value as no session.
 *
 * The index is written only when a session's indexed user is new to it (login, the `userKey` value changing, a
 * session stored before this scheme) or when the session would outlive the index key: an ordinary save is then
 * one SET on the session's own slot, so on a Cluster it never depends on the master holding the user's index.
 * The index key is given `ttl` of slack past the session's expiry, so a session extended by saves and touches
 * refreshes it about once per `ttl`; it outlives the longest session it lists by at most `ttl`.
 */
export class ClusterRedisStore extends RedisStore {
  readonly raw: RawRedis;
  readonly userKey: string;
  readonly defaultTtl: number;
  private readonly logger: Logger;
  /** Set when the server refuses scripts (an ACL without EVAL): touches fall back to EXPIRE. */
  private scriptsRefused = false;
  private readonly waitReplicas: number;
  private readonly waitMs: number;

  /**
   * `waitReplicas` > 0: a save or destroy succeeds only once that many replicas confirmed it (WAIT, up to `waitMs`),
   * so an answered login or logout survives a failover; otherwise it fails (503) although the master may have it.
   */
  constructor(client: unknown, opts: { prefix: string; ttl: number; userKey: string; logger: Logger; waitReplicas?: number; waitMs?: number }) {
    const raw = rawRedis(client);
    if (!raw) throw new ConfigError('redis store: the client is neither ioredis nor node-redis 5');
    super({ client, prefix: opts.prefix, ttl: opts.ttl, serializer: { parse: (s: string) => parse(s, opts.logger) as SessionData, stringify } });
    this.raw = raw;
    this.userKey = opts.userKey;
    this.defaultTtl = opts.ttl;
    this.logger = opts.logger;
    this.waitReplicas = opts.waitReplicas ?? 0;
    this.waitMs = opts.waitMs ?? 500;
  }

  /** With waitReplicas: resolves once enough replicas have the writes to `sid` so far, else rejects. */
  private async confirm(sid: string): Promise<void> {
    if (this.waitReplicas === 0) return;
    const acked = await this.raw.confirm(this.prefix + sid, this.waitReplicas, this.waitMs);
    if (acked < this.waitReplicas) {
      throw new Error(`written on the master but confirmed by ${acked} of ${this.waitReplicas} replicas within ${this.waitMs} ms (waitReplicas)`);
    }
  }

  override createSession(req: Parameters<RedisStore['createSession']>[0], sess: SessionData): ReturnType<RedisStore['createSession']> {
    const stamp = stampOf(sess);
    const s = super.createSession(req, sess);
    if (stamp) setStamp(s, { ...stamp, sid: req.sessionID });
    return s;
  }

  /** The stamp to write when this save or touch must (re)write the user index, else undefined. */
  private indexDue(sid: string, sess: SessionData): IndexStamp | undefined {
    const user = userOf(sess, this.userKey);
    if (!user) return undefined;
    const known = stampOf(sess) as Partial<IndexStamp> | undefined;
    const exp = expiresAt(sess, this.defaultTtl);
    if (known && known.sid === sid && known.user === user && exp <= known.exp!) return undefined;
    return { sid, user, exp: exp + this.defaultTtl * 1000 };
  }

  private writeIndex(stamp: IndexStamp): Promise<void> {
    return this.raw.addToSet(userIndexKey(this.prefix, stamp.user), stamp.sid, Math.max(1000, Math.ceil(stamp.exp - Date.now())));
  }

  override set(sid: string, sess: SessionData, cb?: Cb): Promise<any> {
    return reply(cb, this.setAndIndex(sid, sess).then(() => this.confirm(sid)));
  }

  override destroy(sid: string, cb?: Cb): Promise<any> {
    return reply(cb, (super.destroy(sid) as Promise<unknown>).then(() => this.confirm(sid)));
  }

  private async setAndIndex(sid: string, sess: SessionData): Promise<void> {
    if (!userOf(sess, this.userKey)) setStamp(sess, undefined);
    const due = this.indexDue(sid, sess);
    if (!due) return void (await super.set(sid, sess));
    // Index first, then the session claiming it: a failure in between leaves an index member without a session
    // (harmless, see destroyUser), never a session that believes it is indexed when it is not.
    await this.writeIndex(due);
    const before = stampOf(sess);
    setStamp(sess, due);
    try {
      await super.set(sid, sess);
    } catch (err) {
      setStamp(sess, before);
      throw err;
    }
  }

  /**
   * Moves the expiry of an unchanged session. connect-redis's touch is an EXPIRE, which leaves the stored cookie
   * with the expiry of the last save: every later load would then find the session due for a touch again and the
   * lazy touch (touchAfter) would turn into an EXPIRE per request. So a loaded session is rewritten with its new
   * expiry instead, only if the stored text is still the one loaded (a newer save wins; a destroyed session
   * stays destroyed). When the user index must move, it moves first, as in set().
   */
  override touch(sid: string, sess: SessionData, cb?: Cb): Promise<any> {
    const run = async () => {
      const due = this.indexDue(sid, sess);
      if (due) await this.writeIndex(due);
      if (await this.rewriteExpiry(sid, sess, due)) return;
      await super.touch(sid, sess);
      if (due) setStamp(sess, due);
    };
    return reply(cb, run());
  }

  /**
   * touch() as a compare-and-set of the whole value. False when that cannot run (the session was not loaded by
   * this process, or the server refuses scripts): the caller then falls back to connect-redis's EXPIRE.
   */
  private async rewriteExpiry(sid: string, s: SessionData, due: IndexStamp | undefined): Promise<boolean> {
    const loaded = loadedOf(s);
    if (loaded === undefined || this.scriptsRefused) return false;
    const ms = expiresAt(s, this.defaultTtl) - Date.now();
    if (ms <= 0) return true;
    const before = stampOf(s);
    if (due) setStamp(s, due);
    const value = stringify(s);
    try {
      if (await this.raw.replaceIfUnchanged(this.prefix + sid, loaded, value, ms)) setLoaded(s, value);
      else setStamp(s, before);
      return true;
    } catch (err) {
      if (!/NOPERM|unknown command/i.test((err as Error)?.message ?? '')) throw err;
      this.scriptsRefused = true;
      this.logger.warn(`cluster-session: Redis refuses EVAL (${(err as Error).message}); touches fall back to EXPIRE, so an active session is touched on every request once touchAfter has passed. Allow EVAL for the session user to keep touches lazy.`);
      setStamp(s, before);
      return false;
    }
  }

  private sessionKeys(): Promise<string[]> {
    return this.raw.scanAll(`${this.prefix}*`, this.scanCount).then((keys) => keys.filter((k) => !k.startsWith(`${this.prefix}~`)));
  }

  override ids(cb?: Cb): Promise<any> {
    return reply(cb, this.sessionKeys().then((keys) => keys.map((k) => k.slice(this.prefix.length))));
  }

  override length(cb?: Cb): Promise<any> {
    return reply(cb, this.sessionKeys().then((keys) => keys.length));
  }

  override clear(cb?: Cb): Promise<any> {
    const run = async () => {
      // Sessions and user indexes go; deny-list entries stay (clearing sessions must not un-revoke tokens).
      const keys = await this.raw.scanAll(`${this.prefix}*`, this.scanCount);
      const deny = denyKey(this.prefix, '');
      await inChunks(keys.filter((k) => !k.startsWith(deny)), 100, (k) => this.raw.del(k));
    };
    return reply(cb, run());
  }

  override all(cb?: Cb): Promise<any> {
    const run = async () => {
      const keys = await this.sessionKeys();
      const values = await inChunks(keys, 100, (k) => this.raw.get(k));
      const out: SessionData[] = [];
      values.forEach((v, i) => {
        if (v === null) return;
        const sess = this.serializer.parse(v) as SessionData | null;
        if (sess) out.push(Object.assign(sess, { id: keys[i]!.slice(this.prefix.length) }));
      });
      return out;
    };
    return reply(cb, run());
  }

  async listUser(userId: string): Promise<Array<{ sid: string; sess: SessionData }>> {
    const sids = await this.raw.members(userIndexKey(this.prefix, userId));
    const found = await inChunks(sids, 100, async (sid) => {
      const text = await this.raw.get(this.prefix + sid);
      const sess = text === null ? null : parse(text, nullLogger);
      return sess && userOf(sess, this.userKey) === userId ? [{ sid, sess }] : [];
    });
    return found.flat();
  }

  async destroyUser(userId: string): Promise<number> {
    const key = userIndexKey(this.prefix, userId);
    const sids = await this.raw.members(key);
    // Members may be stale: a session gone (expired, logged out) or one whose user changed in place since it was
    // indexed. Only sessions that still belong to this user are deleted.
    const deleted = await inChunks(sids, 100, async (sid) => {
      const text = await this.raw.get(this.prefix + sid);
      const sess = text === null ? null : parse(text, nullLogger);
      return sess && userOf(sess, this.userKey) === userId ? this.raw.del(this.prefix + sid) : 0;
    });
    // SREM what was handled rather than DEL the key, so a login racing with this call stays indexed.
    await this.raw.removeFromSet(key, sids);
    return deleted.reduce((a: number, b) => a + Number(b), 0);
  }
}

const nullLogger: Logger = { warn: () => {}, error: () => {} };
