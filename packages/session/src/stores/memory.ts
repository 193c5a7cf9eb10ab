import { MemoryStore, type SessionData } from 'express-session';
import type { ResolvedConfig } from '../config.ts';
import { userOf } from '../serializer.ts';
import { alwaysUp, checkJti, type DenyList, type StoreHandle } from './types.ts';

/** express-session's MemoryStore: one process only (resolveConfig refuses it for an unsticky multi-worker cluster). */
export function createMemoryHandle(config: ResolvedConfig): StoreHandle {
  const store = new MemoryStore();
  return {
    name: 'memory',
    store,
    ...alwaysUp,
    async ping() {},
    async listUser(userId) {
      const now = Date.now();
      const sessions = (store as unknown as { sessions: Record<string, string> }).sessions;
      const out: Array<{ sid: string; sess: SessionData }> = [];
      for (const [sid, json] of Object.entries(sessions)) {
        const sess = JSON.parse(json) as SessionData;
        const expired = sess.cookie?.expires && new Date(sess.cookie.expires).getTime() <= now;
        if (!expired && userOf(sess, config.userKey) === userId) out.push({ sid, sess });
      }
      return out;
    },
    async destroyUser(userId) {
      let n = 0;
      const now = Date.now();
      // MemoryStore keeps each session as JSON text in `sessions` (not in its typings; clear() replaces the object).
      const sessions = (store as unknown as { sessions: Record<string, string> }).sessions;
      for (const [sid, json] of Object.entries(sessions)) {
        const sess = JSON.parse(json) as { cookie?: { expires?: string } };
        const expired = sess.cookie?.expires && new Date(sess.cookie.expires).getTime() <= now;
        if (userOf(sess, config.userKey) === userId) {
          delete sessions[sid];
          if (!expired) n++;
        }
      }
      return n;
    },
    async close() {},
  };
}

/** Revoked JWT ids in this process only (a logout on one worker revokes on that worker only). */
export function memoryDenyList(): DenyList {
  const entries = new Map<string, number>();
  return {
    async add(jti, expiresAtMs) {
      checkJti(jti);
      if (expiresAtMs > Date.now()) entries.set(jti, Math.max(expiresAtMs, entries.get(jti) ?? 0));
      // Amortised sweep: keeps the map bounded by the live revocations.
      if (entries.size % 256 === 0) for (const [k, exp] of entries) if (exp <= Date.now()) entries.delete(k);
    },
    async has(jti) {
      checkJti(jti);
      const exp = entries.get(jti);
      if (exp === undefined) return false;
      if (exp > Date.now()) return true;
      entries.delete(jti);
      return false;
    },
    async close() {
      entries.clear();
    },
  };
}
