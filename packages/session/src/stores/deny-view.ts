import type { DenyList } from './types.ts';

/** What a store offers so that each process can keep the deny list in memory instead of asking per request. */
export interface DenyFeed {
  /** A cheap read that changes whenever any process adds an entry (a counter the store bumps with each add). */
  stamp(): Promise<string>;
  /** Every entry that has not expired, as [jti, expiresAtMs]. */
  live(): Promise<Array<[string, number]>>;
}

/** Poll the stamp this often; a logout reaches every process within about one interval. */
const VIEW_POLL_MS = 200;
/**
 * A view older than this is not trusted: `has` asks the store itself (the exact, per-request lookup) until a poll
 * succeeds again. This, not the poll interval, bounds how late a logout can be seen anywhere: < 1 s.
 */
const VIEW_STALE_MS = 800;

/**
 * A per-process copy of the deny list, kept current by polling the store's stamp (one cheap read per process every
 * 200 ms, not one per request) and re-reading the live entries when it moved. Revocation from this process is
 * seen at once; from another within VIEW_STALE_MS. While the store cannot be polled, lookups go to the store as
 * before (and fail as before, as a 503, when it is down).
 */
export function denyListView(list: DenyList, feed: DenyFeed, pollMs = VIEW_POLL_MS, staleMs = VIEW_STALE_MS): DenyList {
  let entries = new Map<string, number>();
  let stamp: string | undefined;
  /** Start time of the last poll that completed: every add committed before it is in `entries`. */
  let freshAt = -Infinity;
  let polling: Promise<void> | undefined;
  let closed = false;

  const poll = (): Promise<void> =>
    (polling ??= (async () => {
      const started = Date.now();
      try {
        // The stamp is read before the entries: an add racing with this poll moves the stamp again, so the next
        // poll re-reads; none is missed.
        const now = await feed.stamp();
        if (now !== stamp) {
          entries = new Map(await feed.live());
          stamp = now;
        }
        freshAt = started;
      } catch {
        // The store is unreachable or slow: lookups fall back to it once the view is stale (and answer 503 there).
      } finally {
        polling = undefined;
      }
    })());

  const timer = setInterval(() => void (closed || poll()), pollMs);
  timer.unref();
  void poll();

  return {
    async add(jti, expiresAtMs) {
      await list.add(jti, expiresAtMs);
      entries.set(jti, Math.max(expiresAtMs, entries.get(jti) ?? 0));
    },
    // Not async: while the view is fresh the answer is known at once, and a promise would cost the request a timer.
    has(jti) {
      const now = Date.now();
      if (now - freshAt > staleMs) return list.has(jti);
      const until = entries.get(jti);
      return until !== undefined && until > now;
    },
    async close() {
      closed = true;
      clearInterval(timer);
      await polling;
      await list.close();
    },
  };
}
