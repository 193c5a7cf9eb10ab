import http from 'node:http';
import { BUCKETS, type Tally } from './metrics.ts';

/**
 * What the status page shows beyond the balancer's own state: the last minutes of requests/s, p99 latency and
 * errors/s (sampled from the metrics' tallies every few seconds, so a chart costs nothing per request), and each
 * instance's workers, read from the instance's cluster status (`<status>/status.json`, `cluster-session start
 * --metrics`) when the page asks, at most once a second.
 */

export const SAMPLE_MS = 2_000;
/** 5 minutes of samples. */
const KEEP = 150;
/**
 * How long an instance's `/status.json` may take. The primary answers it after asking each worker, waiting up to
 * 1 s for one that is busy (WorkerProcess.stats), so this must be longer than that: at 1 s, one slow worker made the
 * whole instance show as unreachable instead of that worker's figures as missing.
 */
const FETCH_TIMEOUT_MS = 2_500;

interface Point {
  /** ms since epoch. */
  t: number;
  rps: number;
  /** 5xx answers per second. */
  errors: number;
  /** p99 of the interval's requests, in ms (null when there were none). */
  p99: number | null;
  /** Requests/s by instance id. */
  byUpstream: Record<string, number>;
}

interface Watched {
  id: string;
  tally: Tally;
}

function copy(t: Tally): { buckets: Float64Array; count: number; errors: number } {
  let errors = 0;
  for (let c = 500; c < 600; c++) errors += t.codes[c]!;
  return { buckets: Float64Array.from(t.buckets), count: t.count, errors };
}

/** The 99th percentile of a bucket delta, interpolated within its bucket as Prometheus' histogram_quantile does. */
function quantile(q: number, buckets: ArrayLike<number>): number | null {
  let total = 0;
  for (let i = 0; i < buckets.length; i++) total += buckets[i]!;
  if (total === 0) return null;
  const rank = q * total;
  let acc = 0;
  for (let i = 0; i < buckets.length; i++) {
    const n = buckets[i]!;
    if (acc + n >= rank) {
      if (i === BUCKETS.length) return BUCKETS[BUCKETS.length - 1]!; // in +Inf: the highest finite bound
      const lo = i === 0 ? 0 : BUCKETS[i - 1]!;
      return lo + (BUCKETS[i]! - lo) * ((rank - acc) / n);
    }
    acc += n;
  }
  return null;
}

export class History {
  readonly points: Point[] = [];
  #prev = new Map<string, ReturnType<typeof copy>>();
  #at = Date.now();
  #timer: NodeJS.Timeout | undefined;
  readonly #watched: () => Iterable<Watched>;

  constructor(watched: () => Iterable<Watched>) {
    this.#watched = watched;
  }

  start(): void {
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), SAMPLE_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #sample(): void {
    const now = Date.now();
    const seconds = (now - this.#at) / 1000;
    const next = new Map<string, ReturnType<typeof copy>>();
    const delta = new Float64Array(BUCKETS.length + 1);
    let count = 0;
    let errors = 0;
    const byUpstream: Record<string, number> = {};
    for (const w of this.#watched()) {
      const cur = copy(w.tally);
      next.set(w.id, cur);
      const prev = this.#prev.get(w.id);
      if (!prev) continue;
      for (let i = 0; i < delta.length; i++) delta[i]! += cur.buckets[i]! - prev.buckets[i]!;
      count += cur.count - prev.count;
      errors += cur.errors - prev.errors;
      if (w.id !== '') byUpstream[w.id] = round((cur.count - prev.count) / seconds);
    }
    const first = this.#prev.size === 0;
    this.#prev = next;
    this.#at = now;
    if (first || seconds <= 0) return;
    const p99 = quantile(0.99, delta);
    this.points.push({ t: now, rps: round(count / seconds), errors: round(errors / seconds), p99: p99 === null ? null : round(p99 * 1000), byUpstream });
    if (this.points.length > KEEP) this.points.shift();
  }
}

const round = (n: number) => Math.round(n * 10) / 10;

interface InstanceView {
  ok: boolean;
  /** The cluster's `/status.json`: name, primary pid and every slot (workers, store figures). */
  cluster?: unknown;
  error?: string;
}

/** GET `<base>/status.json`, bounded in time and size; never throws. */
function fetchInstance(base: string): Promise<InstanceView> {
  return new Promise((resolve) => {
    const req = http.get(`${base}/status.json`, { timeout: FETCH_TIMEOUT_MS, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
        if (body.length > 1 << 20) req.destroy(new Error('answer larger than 1 MiB'));
      });
      res.on('end', () => {
        if (res.statusCode !== 200) return resolve({ ok: false, error: `status.json answered ${res.statusCode}` });
        try {
          resolve({ ok: true, cluster: JSON.parse(body) });
        } catch {
          resolve({ ok: false, error: 'status.json is not JSON' });
        }
      });
      res.on('error', (err) => resolve({ ok: false, error: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${FETCH_TIMEOUT_MS} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, error: err.code ?? err.message }));
  });
}

/** Instance views, fetched when asked but at most once a second whatever the number of open pages. */
export class InstanceCache {
  #at = 0;
  #views: Promise<Record<string, InstanceView>> = Promise.resolve({});

  get(targets: Array<{ id: string; status: string | undefined }>): Promise<Record<string, InstanceView>> {
    const now = Date.now();
    if (now - this.#at >= 1_000) {
      this.#at = now;
      this.#views = Promise.all(targets.map(async (t) => [t.id, t.status ? await fetchInstance(t.status) : undefined] as const)).then((pairs) =>
        Object.fromEntries(pairs.filter((p): p is readonly [string, InstanceView] => p[1] !== undefined)),
      );
    }
    return this.#views;
  }
}
