import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hash32, pick, rank } from '@cluster-session/hash';

const keys = Array.from({ length: 20_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
const nodes = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `slot-${i}` }));

function owners(ns: readonly { id: string }[]): Map<string, string> {
  return new Map(keys.map((k) => [k, pick(k, ns)!.id]));
}

test('hash32 is deterministic and spreads near-identical keys', () => {
  assert.equal(hash32('127.0.0.1'), hash32('127.0.0.1'));
  const buckets = new Array<number>(16).fill(0);
  for (let i = 0; i < 16_000; i++) buckets[hash32(`slot-${i}`) & 15]!++;
  for (const b of buckets) assert.ok(b > 800 && b < 1200, `bucket holds ${b} of 16000`);
});

test('keys spread evenly over equal nodes', () => {
  const count = new Map<string, number>();
  for (const id of owners(nodes(4)).values()) count.set(id, (count.get(id) ?? 0) + 1);
  assert.equal(count.size, 4);
  for (const c of count.values()) assert.ok(c > 4_500 && c < 5_500, `node owns ${c} of 20000`);
});

test('removing a node moves only that node\'s keys, and they come back when it returns', () => {
  const all = nodes(4);
  const before = owners(all);
  const after = owners(all.filter((n) => n.id !== 'slot-2'));
  for (const [k, id] of before) {
    if (id !== 'slot-2') assert.equal(after.get(k), id, `key ${k} moved though its node stayed`);
    else assert.notEqual(after.get(k), 'slot-2');
  }
  assert.deepEqual(owners(all), before);
});

test('adding a node takes keys only for itself', () => {
  const before = owners(nodes(3));
  const after = owners(nodes(4));
  let moved = 0;
  for (const [k, id] of before) {
    if (after.get(k) !== id) {
      moved++;
      assert.equal(after.get(k), 'slot-3');
    }
  }
  assert.ok(moved > 4_000 && moved < 6_000, `${moved} keys moved to the new node`);
});

test('weights shift the share, and weight 0 takes nothing', () => {
  const weighted = [{ id: 'a', weight: 3 }, { id: 'b', weight: 1 }, { id: 'c', weight: 0 }];
  const count = new Map<string, number>();
  for (const k of keys) {
    const id = pick(k, weighted)!.id;
    count.set(id, (count.get(id) ?? 0) + 1);
  }
  assert.equal(count.get('c'), undefined);
  const ratio = count.get('a')! / count.get('b')!;
  assert.ok(ratio > 2.6 && ratio < 3.4, `a:b = ${ratio}`);
  assert.equal(pick('x', [{ id: 'z', weight: 0 }]), undefined);
});

test('rank puts the owner first and lists every usable node once', () => {
  const all = nodes(5);
  for (const k of keys.slice(0, 200)) {
    const order = rank(k, all);
    assert.equal(order.length, 5);
    assert.equal(order[0]!.id, pick(k, all)!.id);
    assert.equal(new Set(order.map((n) => n.id)).size, 5);
  }
});
