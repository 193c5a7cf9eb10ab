// One interval for every store call in flight (src/deadlines.ts): a deadline fires once, after its time and at
// most one interval late; a cancelled one never fires; with nothing pending no timer is left running.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gc } from '@cluster-session/testkit';
import { Deadlines } from '../src/deadlines.ts';

/** Intervals started and not cleared since the module loaded (the class's timer is unref'd, so Node does not list it). */
const live = new Set<unknown>();
const { setInterval: realSet, clearInterval: realClear } = globalThis;
globalThis.setInterval = ((...args: Parameters<typeof realSet>) => {
  const t = realSet(...args);
  live.add(t);
  return t;
}) as typeof realSet;
globalThis.clearInterval = ((t: Parameters<typeof realClear>[0]) => {
  live.delete(t);
  realClear(t);
}) as typeof realClear;
const timers = () => live.size;

test('fires once, not before its time and at most one interval after; cancelled ones never', async () => {
  const d = new Deadlines(10);
  const idle = timers();
  const fired: Array<{ name: string; late: number }> = [];
  const at = Date.now() + 60;
  d.add(at, () => fired.push({ name: 'a', late: Date.now() - at }));
  const b = d.add(at, () => fired.push({ name: 'b', late: Date.now() - at }));
  d.add(at + 60, () => fired.push({ name: 'c', late: Date.now() - (at + 60) }));
  assert.equal(timers(), idle + 1, 'one timer for all of them');
  d.cancel(b);
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(fired.map((f) => f.name), ['a', 'c']);
  for (const f of fired) assert.ok(f.late >= 0 && f.late < 100, `${f.name} fired ${f.late} ms after its deadline`);
  assert.equal(timers(), idle, 'no timer left once nothing is pending');
});

test('cancelling the last pending deadline stops the interval at once', () => {
  const d = new Deadlines(10);
  const idle = timers();
  const x = d.add(Date.now() + 1000, () => assert.fail('cancelled'));
  assert.equal(timers(), idle + 1);
  d.cancel(x);
  assert.equal(timers(), idle);
});

/** A full collection, twice (a WeakRef's target is only cleared once the job that made it has ended). */
async function collect(): Promise<void> {
  for (let i = 0; i < 2; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
}

test('a cancelled or fired deadline lets go of its callback: a handle still held keeps no request alive', async () => {
  // The guard's callbacks close over the request, its session and its response. Whatever still refers to a
  // handle after it is done (the caller's variable, a stale internal table) must not keep those alive: under
  // load that kept every request through two young collections and promoted it (src/deadlines.ts).
  const d = new Deadlines(5);
  const closeOver = (o: object) => () => void o;
  let cancelledPayload: object | undefined = { request: new Array(1000).fill(1) };
  let firedPayload: object | undefined = { request: new Array(1000).fill(2) };
  const cancelledRef = new WeakRef(cancelledPayload);
  const firedRef = new WeakRef(firedPayload);
  let fired = 0;
  const cancelled = d.add(Date.now() + 60_000, closeOver(cancelledPayload));
  const done = d.add(Date.now(), ((o: object) => () => void (fired++, o))(firedPayload));
  cancelledPayload = firedPayload = undefined;
  d.cancel(cancelled);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(fired, 1);
  await collect();
  assert.equal(cancelledRef.deref(), undefined, 'a cancelled handle still holds its callback');
  assert.equal(firedRef.deref(), undefined, 'a fired handle still holds its callback');
  assert.ok(cancelled && done, 'both handles are still held here');
});

test('a callback may add and cancel deadlines while they are being checked', async () => {
  const d = new Deadlines(5);
  const idle = timers();
  const order: string[] = [];
  const now = Date.now();
  let later: ReturnType<Deadlines['add']> | undefined;
  d.add(now, () => {
    order.push('first');
    // Cancels one already due in the same sweep, and adds one due at once (the next sweep fires it).
    d.cancel(second);
    d.add(Date.now(), () => order.push('added'));
    d.cancel(later!);
  });
  const second = d.add(now, () => order.push('second'));
  later = d.add(now + 60_000, () => order.push('later'));
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(order, ['first', 'added']);
  assert.equal(timers(), idle, 'no timer left once nothing is pending');
  d.cancel(second); // cancelling twice, or after firing, changes nothing
  assert.equal(timers(), idle);
});
