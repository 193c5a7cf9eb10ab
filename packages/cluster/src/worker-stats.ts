import dc from 'node:diagnostics_channel';
import { createHistogram, monitorEventLoopDelay, type RecordableHistogram } from 'node:perf_hooks';
import { CHANNELS, type StoreOperation } from '@cluster-session/core';

/**
 * A worker's own figures for `cluster-session status` and the status page: requests per second, request latency,
 * CPU, heap, event-loop delay and the session store's health. Kept without prom-client (that one is only loaded
 * when the primary serves /metrics, worker-metrics.ts), so they cost a counter and a histogram record per request.
 *
 * "Recent" means the last 15-30 s: each histogram is a pair, the current window and the one before, rotated every
 * WINDOW_MS; readers see both merged, so a figure never drops to nothing right after a rotation.
 */

const WINDOW_MS = 15_000;
/** Samples of (time, requests, CPU time) once a second; rates are over the last RATE_SAMPLES seconds. */
const RATE_SAMPLES = 10;

/** Milliseconds, from a histogram recorded in microseconds. */
interface Spread {
  p50: number;
  p99: number;
  max: number;
}

export interface StoreFigures {
  /** The store's type (`redis`, ...) as the session reports it. */
  name: string;
  /** False when the last store call failed, or a request was answered 503 for the store since the last success. */
  healthy: boolean;
  operations: number;
  errors: number;
  /** Requests answered 503 because the store was unavailable. */
  unavailable: number;
  /** Recent store call latency, in ms. */
  latencyMs: Spread;
  lastError?: string;
}

/** What a worker reports with its stats, beyond RSS and the request count. */
export interface WorkerFigures {
  /** CPU time over the last seconds, in percent of one core. */
  cpuPercent: number;
  heapUsed: number;
  heapTotal: number;
  /** Recent event-loop delay, in ms. */
  eventLoopDelayMs: Spread;
  /** Requests finished per second over the last seconds. */
  requestsPerSecond: number;
  /** Recent request latency (request start to response end), in ms. */
  latencyMs: Spread;
  /** Answers with a 5xx status since the worker started. */
  serverErrors: number;
  /** The session store, once the app used one. */
  store?: StoreFigures;
}

class Window {
  #cur: RecordableHistogram = createHistogram();
  #prev: RecordableHistogram = createHistogram();

  record(micros: number): void {
    this.#cur.record(Math.max(1, Math.round(micros)));
  }

  rotate(): void {
    this.#prev = this.#cur;
    this.#cur = createHistogram();
  }

  spread(): Spread {
    const h = createHistogram();
    h.add(this.#prev);
    h.add(this.#cur);
    if (h.count === 0) return { p50: 0, p99: 0, max: 0 };
    const ms = (us: number) => Math.round(us) / 1000;
    return { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) };
  }
}

/** Receives every finished request when the primary serves /metrics (set by worker-metrics.ts). */
type RequestSink = (status: number, seconds: number) => void;

const latency = new Window();
const storeLatency = new Window();
const LOOP_RESOLUTION_MS = 20;
const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
let loopPrev: Spread = { p50: 0, p99: 0, max: 0 };
let finished = 0;
let serverErrors = 0;
let store: Omit<StoreFigures, 'latencyMs'> | undefined;
const samples: Array<{ at: number; finished: number; cpu: number }> = [];
let sink: RequestSink | undefined;
let started = false;

const cpuMicros = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

function sample(): void {
  samples.push({ at: performance.now(), finished, cpu: cpuMicros() });
  if (samples.length > RATE_SAMPLES + 1) samples.shift();
}

function onStoreOperation(message: unknown): void {
  const m = message as StoreOperation;
  store ??= { name: m.store, healthy: true, operations: 0, errors: 0, unavailable: 0 };
  store.operations++;
  storeLatency.record(m.seconds * 1e6);
  if (m.ok) store.healthy = true;
  else {
    store.errors++;
    store.healthy = false;
    if (m.error !== undefined) store.lastError = m.error;
  }
}

function onStoreUnavailable(): void {
  store ??= { name: 'store', healthy: false, operations: 0, errors: 0, unavailable: 0 };
  store.unavailable++;
  store.healthy = false;
}

/** Starts the timers and subscriptions (called by installWorker; the timers never keep a worker alive). */
export function startStats(): void {
  if (started) return;
  started = true;
  loop.enable();
  sample();
  setInterval(sample, 1000).unref();
  setInterval(() => {
    latency.rotate();
    storeLatency.rotate();
    loopPrev = loopSpread();
    loop.reset();
  }, WINDOW_MS).unref();
  dc.subscribe(CHANNELS.storeOperation, onStoreOperation);
  dc.subscribe(CHANNELS.storeUnavailable, onStoreUnavailable);
}

/** The loop monitor records the time between its timer's runs: the delay is what exceeds the resolution. */
function loopSpread(): Spread {
  if (loop.count === 0) return { p50: 0, p99: 0, max: 0 };
  const ms = (ns: number) => Math.max(0, Math.round(ns / 1e3 - LOOP_RESOLUTION_MS * 1000) / 1000);
  return { p50: ms(loop.percentile(50)), p99: ms(loop.percentile(99)), max: ms(loop.max) };
}

/** Metrics as prom-client JSON (worker-metrics.ts), answered to the primary's scrape; none until installed. */
type MetricsSource = () => Promise<unknown[]>;
let metricsSource: MetricsSource = () => Promise.resolve([]);

/** worker-metrics.ts plugs in here, so worker.ts never loads prom-client itself. */
export function setMetricsHooks(onRequest: RequestSink, source: MetricsSource): void {
  sink = onRequest;
  metricsSource = source;
}

export function collectMetrics(): Promise<unknown[]> {
  return metricsSource();
}

/** One request finished (or its client went away: status 499, as nginx logs it). */
export function requestDone(status: number, millis: number): void {
  finished++;
  if (status >= 500) serverErrors++;
  latency.record(millis * 1000);
  sink?.(status, millis / 1000);
}

export function figures(): WorkerFigures {
  const now = { at: performance.now(), finished, cpu: cpuMicros() };
  const first = samples[0] ?? now;
  const seconds = (now.at - first.at) / 1000;
  const mem = process.memoryUsage();
  const current = loopSpread();
  return {
    cpuPercent: seconds > 0 ? Math.round(((now.cpu - first.cpu) / 1e4 / seconds) * 10) / 10 : 0,
    heapUsed: mem.heapUsed,
    heapTotal: mem.heapTotal,
    eventLoopDelayMs: current.max > 0 ? current : loopPrev,
    requestsPerSecond: seconds > 0 ? Math.round(((now.finished - first.finished) / seconds) * 10) / 10 : 0,
    latencyMs: latency.spread(),
    serverErrors,
    ...(store ? { store: { ...store, latencyMs: storeLatency.spread() } } : {}),
  };
}
