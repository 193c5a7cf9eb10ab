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

const kOrigin = Symbol('origin');
type Entry = { [kOrigin]?: object } & Record<symbol, unknown>;
const entries = new WeakMap<object, Entry>();

/** The object whose slots `sess` uses: itself, or the one it was copied from. */
function originOf(sess: object): object {
  return entries.get(sess)?.[kOrigin] ?? sess;
}

function entryOf(sess: object, create: boolean): Entry | undefined {
  let e = entries.get(sess);
  const origin = e?.[kOrigin];
  if (origin !== undefined) {
    sess = origin;
    e = entries.get(origin);
  }
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
  entries.set(copy, { [kOrigin]: originOf(sess) });
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
