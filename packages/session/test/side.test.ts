// The slots the layers between express-session and a store keep beside a session object (src/side.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { youngGcSurvival } from '@cluster-session/testkit';
import { slot, storeCopy } from '../src/side.ts';

const text = slot<string>('text');

function loaded(payload: unknown): Record<string, unknown> {
  const sess: Record<string, unknown> = { cookie: { path: '/' }, payload };
  text.set(sess, 'stored');
  return sess;
}

describe('session slots', () => {
  test('a copy shares its origin’s slots, both ways, and shows no extra key', () => {
    const sess = loaded('p');
    const copy = storeCopy(sess);
    const again = storeCopy(copy);
    assert.equal(text.get(copy), 'stored');
    assert.equal(text.get(again), 'stored');
    text.set(again, 'saved');
    assert.equal(text.get(sess), 'saved');
    text.delete(copy);
    assert.equal(text.get(sess), undefined);
    assert.deepEqual(Object.getOwnPropertyNames(copy), Object.getOwnPropertyNames(sess));
    assert.equal(JSON.stringify(copy), JSON.stringify(sess));
    assert.deepEqual({ ...copy }, sess);
    assert.equal(text.get({ ...copy }), undefined, 'a plain spread is a new session, not a copy');
  });

  // A copy handed to a store is often alive at a young collection (its call in flight), so V8 comes to allocate
  // copies in the old generation; one that linked to its origin (by a property or a WeakMap entry's value) kept
  // the live session, and through it the request, until the next full collection.
  test('a dead session and its copies do not outlive a young collection', async () => {
    const { allocated, survived } = await youngGcSurvival(
      () => storeCopy(loaded(null)),
      () => {
        for (let i = 0; i < 200; i++) storeCopy(loaded(new Array(500).fill(i)));
      },
    );
    assert.ok(allocated > 500_000, `the garbage was allocated (${allocated} B)`);
    assert.ok(survived < allocated / 4, `${survived} of ${allocated} B survived two young collections`);
  });
});
