import v8 from 'node:v8';
import vm from 'node:vm';
import { setTimeout as wait } from 'node:timers/promises';

type Gc = (options?: { type: 'minor' | 'major' }) => void;
let exposed: Gc | undefined;
/**
 * V8's gc() (a full collection, or `{ type: 'minor' }` a young one) without starting the test process with
 * --expose-gc: the flag only adds the function to contexts made after it.
 */
export const gc: Gc = (options) => {
  if (!exposed) {
    v8.setFlagsFromString('--expose-gc');
    exposed = vm.runInNewContext('gc') as Gc;
  }
  // gc(undefined) is not gc(): V8 reads any argument but an options object as asking for a young collection.
  if (options === undefined) exposed();
  else exposed(options);
};

/** Bytes in use in the young generation, and in the rest of the heap. */
function heapUsed(): { young: number; old: number } {
  let young = 0;
  let old = 0;
  for (const s of v8.getHeapSpaceStatistics()) {
    if (s.space_name === 'new_space' || s.space_name === 'new_large_object_space') young += s.space_used_size;
    else old += s.space_used_size;
  }
  return { young, old };
}

/**
 * How much of what `garbage` allocates is kept by two young-generation collections although nothing references it.
 * `warm` runs first with its objects kept alive across young collections, as a request's objects are while its
 * store call is in flight: that is what makes V8 pretenure an allocation site (allocate its objects straight in the
 * old generation), and a dead old object keeps what it references alive until the next full collection.
 */
export async function youngGcSurvival(warm: () => unknown, garbage: () => void): Promise<{ allocated: number; survived: number }> {
  for (let round = 0; round < 100; round++) {
    const kept: unknown[] = [];
    for (let i = 0; i < 500; i++) kept.push(warm());
    gc({ type: 'minor' });
    await wait(1);
  }
  gc({ type: 'major' });
  await wait(1);
  const before = heapUsed();
  garbage();
  const made = heapUsed();
  await wait(1);
  gc({ type: 'minor' });
  gc({ type: 'minor' });
  const end = heapUsed();
  // What was allocated old (a pretenured site) counts as allocated, not as survived: only what a young collection
  // kept (still young, or promoted since) does.
  const allocated = made.young - before.young + made.old - before.old;
  return { allocated, survived: end.young - before.young + end.old - made.old };
}
