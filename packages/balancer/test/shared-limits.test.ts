// The per-client limits shared between worker threads: the shared token bucket answers as RateLimiter does, real
// threads hammering one table together never get more than the limit, and the tables stay within their memory.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { RateLimiter } from '../src/rate-limit.ts';
import { LocalConnCounts, SharedConnCounts, SharedRateLimiter } from '../src/shared-limits.ts';

const MODULE = new URL('../src/shared-limits.ts', import.meta.url).href;

/** A deterministic PRNG (mulberry32), so a failing sequence can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Run in each worker thread (CommonJS, then the module by file URL): waits at `gate` until every thread is up, so
// they all start at once, then does `job` and posts its result.
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
import(workerData.module).then((m) => {
  const { job, gate, threads, thread } = workerData;
  const g = new Int32Array(gate);
  Atomics.add(g, 1, 1);
  while (Atomics.load(g, 0) === 0) Atomics.wait(g, 0, 0, 50);
  if (job === 'rate') {
    const limiter = new m.SharedRateLimiter(workerData.buffer, workerData.limit);
    const allowed = {};
    const waits = new Set();
    for (let i = 0; i < workerData.takes; i++) {
      const key = workerData.keys[i % workerData.keys.length];
      const wait = limiter.take(key, 1000);
      if (wait === 0) allowed[key] = (allowed[key] ?? 0) + 1;
      else waits.add(wait);
    }
    parentPort.postMessage({ allowed, waits: [...waits] });
  } else if (job === 'conn') {
    const counts = new m.SharedConnCounts(workerData.buffer, thread, threads);
    const truth = new Int32Array(workerData.truth); // per address: opens begun, closes done
    const ips = workerData.ips;
    const held = ips.map(() => 0);
    const violations = [];
    let rnd = thread * 7919 + 1;
    const open = (i) => {
      const closed = Atomics.load(truth, 2 * i + 1);
      Atomics.add(truth, 2 * i, 1);
      const n = counts.open(ips[i]);
      const begun = Atomics.load(truth, 2 * i);
      held[i]++;
      // At least this thread's own connections; at most every open begun so far less every close done before.
      if (n < held[i] || n > begun - closed) violations.push({ ip: ips[i], n, own: held[i], max: begun - closed });
    };
    const close = (i) => {
      counts.close(ips[i]);
      Atomics.add(truth, 2 * i + 1, 1);
      held[i]--;
    };
    const meet = (at) => {
      Atomics.add(g, at, 1);
      while (Atomics.load(g, at) < threads) Atomics.wait(g, at, Atomics.load(g, at), 5);
    };
    // Every thread holds one connection of the first address, then all meet: each sees the others' too.
    open(0);
    meet(2);
    const seen = counts.open(ips[0]);
    counts.close(ips[0]);
    meet(3);
    let open_ = 0;
    for (let k = 0; k < workerData.ops; k++) {
      rnd = (Math.imul(rnd, 1103515245) + 12345) | 0;
      const i = (rnd >>> 8) % ips.length;
      // Mostly one connection at a time per thread, so most opens claim a slot, and now and then a second one.
      if (held[i] === 0 && (open_ === 0 || (rnd >>> 20) % 8 === 0)) open(i), open_++;
      else if (held[i] > 0) close(i), open_--;
    }
    for (let i = 0; i < ips.length; i++) while (held[i] > 0) close(i);
    parentPort.postMessage({ violations: violations.slice(0, 5), seen });
  } else if (job === 'hold') {
    const counts = new m.SharedConnCounts(workerData.buffer, thread, threads);
    for (let i = 0; i < 3; i++) counts.open('10.0.0.1');
    counts.open('10.0.0.2');
    parentPort.postMessage('held');
    // Then open and close forever until terminated, so it may die holding a stripe's lock.
    for (;;) {
      counts.open('10.0.0.3');
      counts.close('10.0.0.3');
    }
  }
});
`;

/** Starts one thread per entry of `data` at once and returns what each posted. */
async function threads<T>(data: Array<Record<string, unknown>>): Promise<T[]> {
  const gate = new SharedArrayBuffer(16);
  const g = new Int32Array(gate);
  const workers = data.map((d, thread) => new Worker(WORKER, { eval: true, workerData: { module: MODULE, gate, thread, threads: data.length, ...d } }));
  try {
    const results = workers.map((w) => once(w, 'message').then(([m]) => m as T));
    while (Atomics.load(g, 1) < workers.length) await sleep(5);
    Atomics.store(g, 0, 1);
    Atomics.notify(g, 0);
    return await Promise.all(results);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

describe('SharedRateLimiter', () => {
  test('answers exactly as RateLimiter over generated sequences of takes and sweeps', () => {
    const rates = [1 / 1000, 6 / 60_000, 50 / 1000, 2.5 / 1000, 1 / 3];
    let takes = 0;
    let limited = 0;
    for (let seq = 0; seq < 400; seq++) {
      const rnd = prng(seq);
      const limit = { perMs: rates[seq % rates.length]!, burst: 1 + Math.floor(rnd() * 8), maxClients: 1000 };
      const local = new RateLimiter(limit);
      const shared = new SharedRateLimiter(SharedRateLimiter.buffer(limit.maxClients), limit);
      const keys = Array.from({ length: 1 + Math.floor(rnd() * 12) }, (_, i) => `192.0.2.${i}`);
      let now = Math.floor(rnd() * 5000);
      let lastSweep = 0;
      for (let op = 0; op < 300; op++) {
        const r = rnd();
        // Mostly bursts at one instant, some short gaps, fractional ones, and long idle stretches.
        if (r < 0.15) now += rnd() * 50;
        else if (r < 0.3) now += Math.floor(rnd() * 2000);
        else if (r < 0.33) now += Math.floor(rnd() * 120_000);
        if (rnd() < 0.05) {
          local.sweep(now);
          shared.sweep(now);
          if (now - lastSweep >= 1000) {
            lastSweep = now;
            assert.equal(shared.size, local.size, `seed ${seq} op ${op}: addresses held after a sweep`);
          }
          continue;
        }
        const key = keys[Math.floor(rnd() * keys.length)]!;
        const want = local.take(key, now);
        assert.equal(shared.take(key, now), want, `seed ${seq} op ${op}: take(${key}, ${now})`);
        takes++;
        if (want > 0) limited++;
      }
    }
    assert.ok(limited > takes / 10 && limited < takes - takes / 10, `both answers are exercised (${limited} of ${takes} limited)`);
  });

  test('4 threads taking from the same addresses at once get exactly burst tokens each', async () => {
    const limit = { perMs: 1 / 2000, burst: 100_000, maxClients: 100 };
    const buffer = SharedRateLimiter.buffer(limit.maxClients);
    const keys = ['198.51.100.1', '2001:db8::1'];
    const results = await threads<{ allowed: Record<string, number>; waits: number[] }>(Array.from({ length: 4 }, () => ({ job: 'rate', buffer, limit, keys, takes: 200_000 })));
    for (const key of keys) assert.equal(results.reduce((n, r) => n + (r.allowed[key] ?? 0), 0), limit.burst, key);
    // 400000 takes per address for 100000 tokens: 300000 refused, and every refusal says 2 s (1 token per 2 s).
    assert.deepEqual([...new Set(results.flatMap((r) => r.waits))], [2]);
    assert.equal(new SharedRateLimiter(buffer, limit).take(keys[0]!, 1000), 2, 'still limited when the threads are done');
  });

  test('more addresses than slots: the table stays its size, a still-limited address stays limited', () => {
    const limit = { perMs: 1 / 60_000, burst: 3, maxClients: 16 };
    const buffer = SharedRateLimiter.buffer(limit.maxClients);
    const bytes = buffer.byteLength;
    assert.equal(SharedRateLimiter.buffer(1).byteLength, bytes, 'at least one stripe');
    assert.ok(SharedRateLimiter.buffer(17).byteLength > bytes, 'a whole number of stripes');
    const limiter = new SharedRateLimiter(buffer, limit);
    for (let i = 0; i < 3; i++) assert.equal(limiter.take('hot', 0), 0);
    assert.ok(limiter.take('hot', 0) > 0);
    // A flood of new addresses (each left with 2 tokens) evicts the fullest buckets: theirs, not hot's with 0.
    for (let i = 0; i < 1000; i++) {
      assert.equal(limiter.take(`flood-${i}`, 1), 0);
      assert.ok(limiter.size <= 16);
    }
    assert.equal(limiter.size, 16);
    assert.equal(buffer.byteLength, bytes);
    assert.ok(limiter.take('hot', 2) > 0, 'evicting another address did not hand hot a new bucket');
    // Once every bucket is full again (3 tokens at 1 per 60 s), sweep empties every slot and they are used again.
    limiter.sweep(200_000);
    assert.equal(limiter.size, 0);
    for (let i = 0; i < 16; i++) assert.equal(limiter.take(`next-${i}`, 200_001), 0);
    assert.equal(limiter.size, 16);
  });

  test('a full-again bucket is reused before a limited one is evicted', () => {
    const limit = { perMs: 1 / 1000, burst: 2, maxClients: 16 };
    const limiter = new SharedRateLimiter(SharedRateLimiter.buffer(limit.maxClients), limit);
    for (let i = 0; i < 15; i++) limiter.take(`old-${i}`, 0); // 1 token each, full again at 1000
    limiter.take('hot', 1000);
    limiter.take('hot', 1000);
    assert.equal(limiter.take('hot', 1000), 1);
    for (let i = 0; i < 15; i++) assert.equal(limiter.take(`new-${i}`, 1000), 0); // into the old ones' slots
    assert.equal(limiter.size, 16);
    assert.equal(limiter.take('hot', 1000), 1, 'hot kept its bucket');
    for (let i = 0; i < 15; i++) assert.equal(limiter.take(`new-${i}`, 1000), 0, 'the new addresses kept theirs');
    for (let i = 0; i < 15; i++) assert.equal(limiter.take(`new-${i}`, 1000), 1, 'and used them up');
  });
});

describe('SharedConnCounts', () => {
  test('4 threads opening and closing for the same addresses: never more than are open, all 0 at the end', async () => {
    const threadCount = 4;
    const buffer = SharedConnCounts.buffer(16, threadCount); // one stripe: every thread on one lock
    // Few connections each over many addresses, so slots empty and are claimed again often.
    const ips = Array.from({ length: 14 }, (_, i) => (i % 3 === 0 ? `2001:db8::${i}` : `203.0.113.${i}`));
    const truth = new SharedArrayBuffer(ips.length * 8);
    const results = await threads<{ violations: unknown[]; seen: number }>(Array.from({ length: threadCount }, () => ({ job: 'conn', buffer, truth, ips, ops: 400_000 })));
    for (const r of results) {
      assert.deepEqual(r.violations, []);
      assert.ok(r.seen >= threadCount + 1 && r.seen <= 2 * threadCount, `every thread's connection counted (${r.seen})`);
    }
    const t = new Int32Array(truth);
    for (let i = 0; i < ips.length; i++) assert.equal(t[2 * i], t[2 * i + 1], 'as many closes as opens');
    const counts = new SharedConnCounts(buffer, 0, threadCount);
    for (const ip of ips) {
      assert.equal(counts.open(ip), 1, `${ip} back to 0`);
      counts.close(ip);
    }
    // No slot was left behind by a lost claim: all 16 take new addresses.
    for (let i = 0; i < 16; i++) counts.open(`198.18.0.${i}`);
    for (let i = 0; i < 16; i++) assert.equal(counts.open(`198.18.0.${i}`), 2, `slot ${i} free at the end`);
  });

  test('clearThread zeroes one thread\u2019s share only', () => {
    const buffer = SharedConnCounts.buffer(64, 4);
    const counts = [0, 1, 2, 3].map((t) => new SharedConnCounts(buffer, t, 4));
    counts.forEach((c, t) => {
      for (let i = 0; i <= t; i++) c.open('a'); // 1 + 2 + 3 + 4
    });
    assert.equal(counts[2]!.open('b'), 1);
    SharedConnCounts.clearThread(buffer, 2, 4);
    assert.equal(counts[0]!.open('a'), 1 + 2 + 4 + 1);
    assert.equal(counts[1]!.open('b'), 1, 'b had only thread 2');
    counts[2]!.close('a'); // nothing of thread 2's left to undo: the others' counts stay
    assert.equal(counts[3]!.open('a'), 1 + 2 + 4 + 1 + 1);
  });

  test('clearThread after a thread is terminated mid-use: its counts go, the table still works', async () => {
    const buffer = SharedConnCounts.buffer(16, 2); // one stripe: the worker's lock is the one we need
    const mine = new SharedConnCounts(buffer, 0, 2);
    assert.equal(mine.open('10.0.0.1'), 1);
    const gate = new SharedArrayBuffer(16);
    Atomics.store(new Int32Array(gate), 0, 1);
    const worker = new Worker(WORKER, { eval: true, workerData: { module: MODULE, gate, thread: 1, threads: 2, job: 'hold', buffer } });
    await once(worker, 'message');
    assert.equal(mine.open('10.0.0.1'), 1 + 3 + 1);
    await worker.terminate();
    SharedConnCounts.clearThread(buffer, 1, 2);
    assert.equal(mine.open('10.0.0.1'), 3);
    assert.equal(mine.open('10.0.0.2'), 1);
    assert.equal(mine.open('10.0.0.3'), 1);
  });

  test('a stripe full of open addresses lets more in uncounted, and a freed slot is reused', () => {
    const buffer = SharedConnCounts.buffer(16, 1);
    const bytes = buffer.byteLength;
    assert.equal(SharedConnCounts.buffer(1, 1).byteLength, bytes, 'at least one stripe');
    assert.ok(SharedConnCounts.buffer(17, 1).byteLength > bytes, 'a whole number of stripes');
    const counts = new SharedConnCounts(buffer, 0, 1);
    for (let i = 0; i < 16; i++) assert.equal(counts.open(`a${i}`), 1);
    for (let i = 0; i < 100; i++) assert.equal(counts.open('over'), 1, 'fail open, not counted');
    counts.close('over'); // undoes nothing: it was never counted
    assert.equal(counts.open('a5'), 2);
    counts.close('a5');
    counts.close('a5'); // a5 at 0: its slot is free
    assert.equal(counts.open('over'), 1);
    assert.equal(counts.open('over'), 2, 'counted now, in the freed slot');
    assert.equal(counts.open('a5'), 1, 'and a5 is the one left out');
    assert.equal(counts.open('a6'), 2, 'the others kept their counts');
    assert.equal(buffer.byteLength, bytes);
  });

  test('a table made for other thread counts is refused', () => {
    const buffer = SharedConnCounts.buffer(16, 4);
    assert.throws(() => new SharedConnCounts(buffer, 0, 2), RangeError);
    assert.throws(() => new SharedConnCounts(buffer, 4, 4), RangeError);
  });
});

describe('LocalConnCounts', () => {
  test('does what the Map in client.ts did', () => {
    const counts = new LocalConnCounts();
    const map = new Map<string, number>();
    const rnd = prng(7);
    const open: string[] = [];
    for (let i = 0; i < 5000; i++) {
      if (open.length === 0 || rnd() < 0.55) {
        const ip = `10.0.${Math.floor(rnd() * 4)}.1`;
        const want = (map.get(ip) ?? 0) + 1;
        map.set(ip, want);
        assert.equal(counts.open(ip), want);
        open.push(ip);
      } else {
        const ip = open.splice(Math.floor(rnd() * open.length), 1)[0]!;
        const left = map.get(ip)! - 1;
        if (left === 0) map.delete(ip);
        else map.set(ip, left);
        counts.close(ip);
      }
    }
    for (const ip of open) counts.close(ip);
    for (const ip of ['10.0.0.1', '10.0.1.1', '10.0.2.1', '10.0.3.1']) assert.equal(counts.open(ip), 1);
    assert.equal(((counts as unknown as { counts: Map<string, number> }).counts).size, 4, 'an entry only while open');
  });
});
