/**
 * What the layers between express-session and a store keep about one session object: the stored text it was
 * loaded from (serializer.ts), its user-index stamp (redis-store.ts), its record for listSessions (session-meta.ts)
 * and the guard's dirty-tracking state (guard.ts). Beside the object, not on it: a loaded session stays plain, with
 * no symbol keys, as under express-session (issue #15).
 *
 * One WeakMap entry per object, holding every layer's slot, rather than one WeakMap per layer: a request loaded up
 * to eight WeakMap entries that way, and WeakMap writes (ephemeron tables grown, rehashed and swept by every GC)
 * were the largest part of the store mode's cost over express-session's own (bench `session`, CPU profile).
 *
 * A copy handed to a store by a layer (storeCopy) shares the slots of the object it was copied from, so what a
 * store keeps by object is found whichever layer's copy it sees.
 */

/**
 * On a copy (storeCopy), not in the WeakMap: the slots it shares, never the object it was copied from. A copy
 * handed to a store survives a young collection when its call is in flight, and once enough do, V8 pretenures the
 * copy's allocation site (allocates every later copy in the old generation). A dead old object is found dead only
 * by a full collection, and until then what it references survives every young one: a link to the live session
 * (and through its `req`, the request, its response and socket), as a WeakMap entry's value or a property, kept
 * every request in flight across the next scavenge (~12 MB copied per scavenge, 15-30 ms pauses, on the memory
 * store's /hit; `--trace-gc-nvp`, and none of it with `--no-allocation-site-pretenuring`). The slots hold only
 * text, numbers and small records. Non-enumerable: neither JSON nor a spread sees it.
 */
const kSlots = Symbol('cluster-session.slots');
type Entry = Record<symbol, unknown>;
type Copy = { [kSlots]?: Entry };
const entries = new WeakMap<object, Entry>();

function entryOf(sess: object, create: boolean): Entry | undefined {
  let e = (sess as Copy)[kSlots] ?? entries.get(sess);
  if (e === undefined && create) entries.set(sess, (e = {}));
  return e;
}

/**
 * A copy of `sess` with the same own keys, sharing its slots. Layers between the request guard and a store
 * (session-meta.ts, encryption.ts) hand the store such a copy with their keys added or sealed, never the live
 * `req.session` changed for the length of the call: express-session hashes `req.session` for its "modified?" test
 * while a touch is in flight, and the app may read it then.
 */
export function storeCopy<T extends object>(sess: T): T & Record<string, unknown> {
  const copy = { ...sess } as T & Record<string, unknown>;
  Object.defineProperty(copy, kSlots, { value: entryOf(sess, true) });
  return copy;
}

interface Slot<T> {
  get(sess: object): T | undefined;
  set(sess: object, value: T): void;
  delete(sess: object): void;
}

/** One layer's slot: its value for a session object (or the object it was copied from). */
export function slot<T>(name: string): Slot<T> {
  const key = Symbol(name);
  return {
    get: (sess) => entryOf(sess, false)?.[key] as T | undefined,
    set: (sess, value) => void (entryOf(sess, true)![key] = value),
    delete: (sess) => {
      const e = entryOf(sess, false);
      if (e !== undefined) e[key] = undefined;
    },
  };
}
