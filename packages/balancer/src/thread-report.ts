import { Tally } from './metrics.ts';
import type { BalancerStatus, Proxy } from './proxy.ts';
import type { UpstreamStatus } from './upstream.ts';

/**
 * What a worker thread tells the main thread about its proxy (`workers` mode), and how the main thread adds the
 * threads' reports into one view for the status page, `/status.json` and `/metrics`. Plain numbers and typed
 * arrays only: a report crosses threads by structured clone, once a scrape or every 2 s, never per request.
 */

interface TallyData {
  codes: Float64Array;
  buckets: Float64Array;
  sum: number;
  count: number;
}

export interface ThreadReport {
  /** The thread's index (0..workers-1). */
  thread: number;
  status: BalancerStatus;
  /** Each instance's answers by code and duration, by instance id. */
  tallies: Record<string, TallyData>;
  /** The proxy's own answers (no instance tried). */
  own: TallyData;
}

const data = (t: Tally): TallyData => ({ codes: t.codes, buckets: t.buckets, sum: t.sum, count: t.count });

export function reportOf(proxy: Proxy, thread: number): ThreadReport {
  const tallies: Record<string, TallyData> = {};
  for (const u of proxy.upstreams) tallies[u.id] = data(u.tally);
  return { thread, status: proxy.status(), tallies, own: data(proxy.ctx.own) };
}

function addTally(into: Tally, t: TallyData): void {
  for (let i = 0; i < into.codes.length; i++) into.codes[i]! += t.codes[i]!;
  for (let i = 0; i < into.buckets.length; i++) into.buckets[i]! += t.buckets[i]!;
  into.sum += t.sum;
  into.count += t.count;
}

type Counts = Pick<UpstreamStatus, 'requests' | 'errors' | 'retries' | 'responses'>;

/** The counters of one instance summed over reports. */
function addCounts(into: Counts, s: Counts): void {
  into.requests += s.requests;
  into.errors += s.errors;
  into.retries += s.retries;
  for (const k of Object.keys(into.responses) as Array<keyof Counts['responses']>) into.responses[k] += s.responses[k];
}

/**
 * The sum of the threads' reports. Counters of threads that ended stay in it (`retire`), so a restarted thread
 * does not make a counter go back, which Prometheus would read as a reset of the whole balancer.
 */
export class MergedReports {
  private readonly retired = { totals: { connections: 0, requests: 0, rejected: 0 }, upstreams: new Map<string, Counts & { tally: Tally }>(), own: new Tally() };
  /** Merged tallies by instance id, and the balancer's own: rebuilt by each merge(), read by the metrics and the charts. */
  readonly tallies = new Map<string, Tally>();
  readonly own = new Tally();
  connections = 0;

  /** A thread ended: what it counted stays counted. */
  retire(r: ThreadReport): void {
    const t = this.retired.totals;
    t.connections += r.status.totals.connections;
    t.requests += r.status.totals.requests;
    t.rejected += r.status.totals.rejected;
    for (const u of r.status.upstreams) {
      let acc = this.retired.upstreams.get(u.id);
      if (!acc) this.retired.upstreams.set(u.id, (acc = { requests: 0, errors: 0, retries: 0, responses: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 }, tally: new Tally() }));
      addCounts(acc, u);
      const tally = r.tallies[u.id];
      if (tally) addTally(acc.tally, tally);
    }
    addTally(this.retired.own, r.own);
  }

  /**
   * One status from the main thread's view (`base`: the instance list, health checks, drains) and the threads'
   * reports: counters and in-flight figures are summed; an instance is `up` while some thread may send to it
   * (passive ejection is each thread's own, as in nginx without a shared zone).
   */
  merge(base: BalancerStatus, url: string, reports: readonly ThreadReport[]): BalancerStatus {
    const totals = { ...this.retired.totals, openConnections: 0 };
    for (const r of reports) {
      totals.connections += r.status.totals.connections;
      totals.requests += r.status.totals.requests;
      totals.rejected += r.status.totals.rejected;
      totals.openConnections += r.status.totals.openConnections;
    }
    this.connections = totals.openConnections;
    this.tallies.clear();
    const upstreams = base.upstreams.map((b) => {
      const u: UpstreamStatus = { ...b, active: 0, idleSockets: 0, requests: 0, errors: 0, retries: 0, responses: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 }, ejectedForMs: 0 };
      const tally = new Tally();
      const old = this.retired.upstreams.get(b.id);
      if (old) {
        addCounts(u, old);
        addTally(tally, old.tally);
      }
      let upSomewhere = reports.length === 0;
      let ejectedForMs = Infinity;
      for (const r of reports) {
        const s = r.status.upstreams.find((x) => x.id === b.id);
        if (!s) continue;
        addCounts(u, s);
        u.active += s.active;
        u.idleSockets += s.idleSockets;
        if (s.lastError && !u.lastError) u.lastError = s.lastError;
        ejectedForMs = Math.min(ejectedForMs, s.ejectedForMs);
        if (s.state === 'up') upSomewhere = true;
        const t = r.tallies[b.id];
        if (t) addTally(tally, t);
      }
      u.ejectedForMs = Number.isFinite(ejectedForMs) ? ejectedForMs : 0;
      if (u.state === 'up' && !upSomewhere) u.state = 'down';
      this.tallies.set(b.id, tally);
      return u;
    });
    this.own.codes.fill(0);
    this.own.buckets.fill(0);
    this.own.sum = this.own.count = 0;
    addTally(this.own, this.retired.own);
    for (const r of reports) addTally(this.own, r.own);
    const threads = reports.map((r) => ({ thread: r.thread, openConnections: r.status.totals.openConnections, connections: r.status.totals.connections, requests: r.status.totals.requests }));
    return { url, strategy: base.strategy, totals, upstreams, threads };
  }
}
