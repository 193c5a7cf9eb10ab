import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { SessionData, Store } from 'express-session';
import type { ResolvedConfig } from './config.ts';
import { ConfigError } from './errors.ts';
import { storeCopy } from './side.ts';
import type { StoreHandle } from './stores/types.ts';

type Cb = (err?: unknown, data?: any) => void;
type Bag = Record<string | symbol, unknown>;

/** The stored field holding the sealed data: `v1.<key id>.<iv>.<ciphertext>.<tag>` (base64url parts). */
const SEALED = '~enc';

interface Keys {
  current: { id: string; key: Buffer };
  byId: ReadonlyMap<string, Buffer>;
}

/**
 * `encryptionKeys` (env SESSION_ENCRYPTION_KEYS): `id:base64key` entries, the first encrypts, every one decrypts,
 * so a key is rotated by putting the new one first and dropping the old one once the sessions it sealed expired.
 */
function parseKeys(entries: readonly string[]): Keys | undefined {
  if (entries.length === 0) return undefined;
  const byId = new Map<string, Buffer>();
  let first: { id: string; key: Buffer } | undefined;
  for (const [i, entry] of entries.entries()) {
    const at = entry.indexOf(':');
    const id = entry.slice(0, at);
    const key = at > 0 ? Buffer.from(entry.slice(at + 1), 'base64') : Buffer.alloc(0);
    if (at <= 0 || !/^[A-Za-z0-9_-]{1,32}$/.test(id) || key.length !== 32 || byId.has(id)) {
      throw new ConfigError(
        `clusterSession: option encryptionKeys (or env SESSION_ENCRYPTION_KEYS) entry ${i + 1} is not valid: expected 'id:key' with a unique id of ` +
          "1-32 letters, digits, _ or -, and a key of 32 bytes in base64. Example: SESSION_ENCRYPTION_KEYS=k2:$(openssl rand -base64 32),k1:<old key>. " +
          'Fix: correct that entry (the first entry encrypts, all decrypt).',
      );
    }
    byId.set(id, key);
    first ??= { id, key };
  }
  return { current: first!, byId };
}

/**
 * AES-256-GCM of a session's data, bound to its id (additional data), so a sealed value copied under another
 * id does not open. What stays readable to the store: the cookie (expiry: the stores index and touch it) and the
 * `userKey` value (the per-user index of logoutEverywhere/listSessions). Everything else, the login's address
 * and user agent included, is sealed.
 */
function sealer(keys: Keys, userKey: string) {
  /**
   * The sealed form of `sess` for one store call, as a copy (serializer.ts `storeCopy`: what the stores keep about
   * the session, such as the loaded text of its compare-and-set touch, stays with the original): every key but the
   * cookie and the user moves into the sealed field. `req.session` itself is never changed.
   */
  const seal = (sid: string, sess: SessionData): SessionData => {
    const sealed = storeCopy(sess);
    const rest: Bag = {};
    for (const k of Object.keys(sealed)) if (k !== 'cookie' && k !== userKey) rest[k] = sealed[k];
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', keys.current.key, iv);
    cipher.setAAD(Buffer.from(sid));
    const ct = Buffer.concat([cipher.update(JSON.stringify(rest)), cipher.final()]);
    for (const k of Object.keys(rest)) delete sealed[k];
    sealed[SEALED] = ['v1', keys.current.id, iv.toString('base64url'), ct.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
    return sealed as SessionData;
  };
  /**
   * A loaded session opened: a copy with the sealed data in the clear (the object a store returns may be one it
   * keeps, a custom store's cache, so it is not changed). Unsealed data comes back as is; null when it cannot be
   * opened (unknown key, tampered).
   */
  const open = (sid: string, stored: SessionData): SessionData | null => {
    const sealed = (stored as unknown as Bag)[SEALED];
    if (sealed === undefined) return stored; // written before encryption was turned on: read, sealed at its next save
    const [v, id, iv, ct, tag, extra] = typeof sealed === 'string' ? sealed.split('.') : [];
    const key = id ? keys.byId.get(id) : undefined;
    if (v !== 'v1' || !key || !iv || ct === undefined || !tag || extra !== undefined) return null;
    let rest: Bag;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(sid));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      rest = JSON.parse(Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString()) as Bag;
    } catch {
      return null;
    }
    const bag = storeCopy(stored);
    delete bag[SEALED];
    for (const [k, value] of Object.entries(rest)) if (k !== 'cookie' && k !== userKey) bag[k] = value;
    return bag;
  };
  return { seal, open };
}

/**
 * Optional encryption of stored sessions, for every store: wraps the store's get/set/touch (under the request
 * guard, so size limits and budgets see the app's data) and the handle's listUser. Nothing when no key is set.
 */
export function encryptStore(handle: StoreHandle, config: ResolvedConfig): void {
  const keys = parseKeys(config.encryptionKeys);
  if (!keys) return;
  const { seal, open } = sealer(keys, config.userKey);
  const store = handle.store as Store & Bag;
  let warned = false;
  const opened = (sid: string, data: SessionData | null | undefined) => {
    if (!data) return data;
    const out = open(sid, data);
    if (out) return out;
    if (!warned) {
      warned = true;
      config.logger.warn('cluster-session: a stored session could not be decrypted (unknown key id or altered); treating it as no session (logged once)');
    }
    return null;
  };

  const get = store.get.bind(store);
  store.get = (sid: string, cb: Cb) => get(sid, (err, data) => (err ? cb(err) : cb(null, opened(sid, data))));
  for (const op of ['set', 'touch'] as const) {
    const original = store[op] as ((sid: string, sess: SessionData, cb?: Cb) => void) | undefined;
    if (typeof original !== 'function') continue;
    const bound = original.bind(store);
    store[op] = (sid: string, sess: SessionData, cb?: Cb) => bound(sid, seal(sid, sess), cb);
  }
  const listUser = handle.listUser.bind(handle);
  (handle as { listUser: StoreHandle['listUser'] }).listUser = async (userId) =>
    (await listUser(userId)).flatMap(({ sid, sess }) => {
      const out = opened(sid, sess);
      return out ? [{ sid, sess: out }] : [];
    });
}
