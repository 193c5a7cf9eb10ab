/**
 * Revoked token ids. Entries only need to live until the token would have expired anyway, so a store can expire
 * them itself (Redis PX, a Mongo TTL index, an SQLite sweep).
 */
export interface DenyList {
  add(jti: string, expiresAtMs: number): Promise<void>;
  /** A list that knows at once (a view kept in memory) may answer without a promise: no timer is set for it then. */
  has(jti: string): Promise<boolean> | boolean;
}

export interface MemoryDenyList extends DenyList {
  readonly size: number;
}

/**
 * A deny list in this process's memory: for tests and single-process apps only. With several workers, each has
 * its own list, so a logout revokes on one worker only: use the session package's store-backed deny list there.
 */
export function createMemoryDenyList(): MemoryDenyList {
  const entries = new Map<string, number>();
  let nextSweep = 0;
  const sweep = (now: number) => {
    if (now < nextSweep) return;
    nextSweep = now + 60_000;
    for (const [jti, until] of entries) if (until <= now) entries.delete(jti);
  };
  return {
    get size() {
      return entries.size;
    },
    async add(jti, expiresAtMs) {
      const now = Date.now();
      sweep(now);
      if (expiresAtMs > now) entries.set(jti, Math.max(expiresAtMs, entries.get(jti) ?? 0));
    },
    async has(jti) {
      const until = entries.get(jti);
      return until !== undefined && until > Date.now();
    },
  };
}
