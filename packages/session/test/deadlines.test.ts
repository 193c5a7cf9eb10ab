// One interval for every store call in flight (src/deadlines.ts): a deadline fires once, after its time and at
// most one interval late; a cancelled one never fires; with nothing pending no timer is left running.
import assert from 'node:assert/strict';
import { test } from 'node:test';
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
