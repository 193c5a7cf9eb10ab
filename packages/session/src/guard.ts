import { storeOperationChannel } from '@cluster-session/core';
import type { Request } from 'express';
import type { SessionData, Store } from 'express-session';
import type { ResolvedConfig } from './config.ts';
import { ClusterSessionError, SessionTooLargeError, StoreUnavailableError } from './errors.ts';
import { budgetOf } from './budget.ts';
import { Deadlines } from './deadlines.ts';
import { dataJson, loadedOf, setLoaded } from './serializer.ts';
import { slot } from './side.ts';
import type { StoreHandle } from './stores/types.ts';

type Cb = (err?: unknown, data?: any) => void;

/** What this request's session looked like when loaded or last saved, beside the session (side.ts: sessions stay plain). */
const states = slot<SessionState>('state');
export const hasState = (sess: object): boolean => states.get(sess) !== undefined;

interface SessionState {
  id: string;
  /** The session's data without its cookie, as JSON. */
  json: string;
  /** Store expiry when loaded or last written (ms since epoch). */
  expires: number | undefined;
  /** Written during this request: a second save/touch of the same data is skipped. */
  saved: boolean;
  /** Made in this request (not loaded from the store). */
  fresh?: boolean;
}

/**
 * Bytes of JSON.stringify(sess), from the data's JSON made for the dirty check and the cookie's own: the session is
 * not serialized a second time only to be measured. The key order does not change a length.
 */
function storedSize(sess: SessionData, json: string): number {
  const cookie = (sess as { cookie?: unknown }).cookie === undefined ? undefined : JSON.stringify(sess.cookie);
  if (typeof cookie !== 'string') return Buffer.byteLength(json);
  // '{"cookie":' + C + (',' + the data's members when there are some) + '}'
  return Buffer.byteLength(json) + Buffer.byteLength(cookie) + (json === '{}' ? 9 : 10);
}

const cookieExpiry = (sess: SessionData) => (sess.cookie?.expires ? new Date(sess.cookie.expires).getTime() : undefined);

export function markState(sess: SessionData, id: string, saved: boolean, fresh = false): void {
  states.set(sess, { id, json: dataJson(sess), expires: cookieExpiry(sess), saved, fresh });
}

export const wasSaved = (sess: object): boolean => states.get(sess)?.saved === true;
export const isFresh = (sess: object): boolean => states.get(sess)?.fresh === true;

/** True when the session differs from what the store holds (changed data, new id, or never stored). */
export function isDirty(sess: SessionData, id: string): boolean {
  const st = states.get(sess);
  return !st || st.id !== id || st.json !== dataJson(sess);
}

/** Store failures become StoreUnavailableError (503); programming errors stay what they are. */
function classify(err: unknown, storeName: string, op: string): unknown {
  if (err instanceof ClusterSessionError) return err;
  if (err instanceof TypeError || err instanceof RangeError || err instanceof SyntaxError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new StoreUnavailableError(`${storeName} store failed on ${op}: ${message}`, { cause: err });
}

/**
 * Wraps the store's request-path methods in place: a request's calls together answer within `storeTimeout` (a
 * late reply is dropped), store errors become StoreUnavailableError, oversized sessions are refused before anything is written,
 * repeated writes of unchanged data in one request are skipped, and touches are lazy when `touchAfter` allows.
 */
export function guardStore(handle: StoreHandle, config: ResolvedConfig): void {
  const store = handle.store as Store & Record<string, unknown>;
  const timeout = config.storeTimeout;
  // A step that overruns is answered within a tenth of storeTimeout of its deadline (5 to 50 ms).
  const slack = Math.min(50, Math.max(5, Math.floor(timeout / 10)));
  const deadlines = new Deadlines(slack);

  /**
   * One store step, bounded by what is left of its request's store budget (see budget.ts), or by `storeTimeout`
   * for a call outside any request. `sess` lets a save find its request when the async context was lost.
   */
  const call = (op: string, original: (...a: any[]) => unknown, args: unknown[], cb: Cb | undefined, sess?: unknown) => {
    const budget = budgetOf(sess);
    const limit = budget ? budget.remaining() : timeout;
    const started = Date.now();
    const t0 = performance.now();
    let done = false;
    let due: ReturnType<Deadlines['add']> | undefined;
    const finish = (err?: unknown, value?: unknown) => {
      if (done) return;
      done = true;
      if (due !== undefined) deadlines.cancel(due);
      if (err && op === 'touch' && /unable to find the session to touch/i.test(String((err as Error).message))) err = undefined;
      const elapsed = Date.now() - started;
      // A step that fails within `slack` of its limit timed out, whoever's timer said so: the store client's own
      // (ioredis' commandTimeout runs on the event loop's cached clock and can end a few ms before Date.now()
      // reaches the limit) or ours. It leaves the request nothing, else a later step with a ms or two left would
      // be sent to a store that is not answering and run there after the request was answered 503.
      if (err && budget && elapsed >= limit - slack) budget.exhaust();
      else budget?.charge(elapsed);
      // For whoever measures the store (the cluster's worker side): core's channels.ts.
      if (storeOperationChannel.hasSubscribers) {
        const error = err ? (err instanceof Error ? err.message : String(err)) : undefined;
        storeOperationChannel.publish({ store: handle.name, operation: op, seconds: (performance.now() - t0) / 1000, ok: !err, error });
      }
      cb?.(err ? classify(err, handle.name, op) : null, value);
    };
    if (limit <= 0) {
      // The earlier steps used the whole budget: fail this one without sending it (asynchronously, as a store would).
      const err = new StoreUnavailableError(`${handle.name} store: the request's storeTimeout (${timeout} ms) was spent before ${op}`);
      return void setImmediate(() => finish(err));
    }
    due = deadlines.add(started + limit, () =>
      finish(new StoreUnavailableError(`${handle.name} store did not answer ${op} within the request's storeTimeout (${timeout} ms; ${limit} ms were left)`)),
    );
    const invoke = () => {
      if (done) return;
      try {
        const r = original.call(store, ...args, finish) as Promise<unknown> | undefined;
        if (r && typeof r.then === 'function') r.then(undefined, finish);
      } catch (err) {
        finish(err);
      }
    };
    // While the first connection is being made, wait for it (within the same deadline) rather than fail.
    if (handle.isUp()) invoke();
    else void handle.whenUp(limit).then(invoke);
  };

  const get = store.get.bind(store) as (...a: any[]) => unknown;
  store.get = (sid: string, cb: Cb) => call('get', get, [sid], cb);

  const destroy = store.destroy.bind(store) as (...a: any[]) => unknown;
  store.destroy = (sid: string, cb?: Cb) => call('destroy', destroy, [sid], cb);

  const set = store.set.bind(store) as (...a: any[]) => unknown;
  store.set = (sid: string, sess: SessionData, cb?: Cb) => {
    // express-session writes nothing for a req.sessionID that is not a string; nor does a direct call here.
    if (typeof sid !== 'string' || sid === '') return void setImmediate(() => cb?.(new TypeError(`store.set: the session id must be a non-empty string, got ${typeof sid}`)));
    const st = states.get(sess);
    const json = dataJson(sess);
    if (st?.saved && st.id === sid && st.json === json) return void cb?.(null);
    const size = storedSize(sess, json);
    if (size > config.maxSessionBytes) return void cb?.(new SessionTooLargeError(size, config.maxSessionBytes));
    call('set', set, [sid, sess], (err, v) => {
      if (!err) states.set(sess, { id: sid, json, expires: cookieExpiry(sess), saved: true });
      cb?.(err, v);
    }, sess);
  };

  if (typeof store.touch === 'function') {
    const touch = (store.touch as (...a: any[]) => unknown).bind(store);
    store.touch = (sid: string, sess: SessionData, cb?: Cb) => {
      const st = states.get(sess);
      const next = cookieExpiry(sess);
      // Lazy touch: the store expiry only has to move when it would drift by touchAfter or more.
      if (st?.saved || (config.touchAfterSeconds > 0 && st?.expires !== undefined && next !== undefined && next - st.expires < config.touchAfterSeconds * 1000)) {
        return void cb?.(null);
      }
      call('touch', touch, [sid, sess], (err, v) => {
        if (!err && st) st.expires = next;
        cb?.(err, v);
      }, sess);
    };
  }

  // Sessions loaded from the store get their state here (express-session builds them through createSession).
  const createSession = store.createSession.bind(store);
  store.createSession = (req: Request, sess: SessionData) => {
    const s = createSession(req, sess);
    // express-session copies the loaded object's keys into its Session: carry the loaded text across for touch().
    const loaded = loadedOf(sess);
    if (loaded !== undefined) setLoaded(s, loaded);
    markState(s, req.sessionID, false);
    return s;
  };
}
