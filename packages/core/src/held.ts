import type { ServerResponse } from 'node:http';

/** The error Node throws for a header set after the headers went out (same code and words as node:_http_outgoing). */
export function headersSentError(): Error {
  return Object.assign(new Error('Cannot set headers after they are sent to the client'), { code: 'ERR_HTTP_HEADERS_SENT' });
}

const HEADER_METHODS = ['setHeader', 'appendHeader', 'removeHeader', 'writeHead', 'setHeaders'] as const;

/** A response made to look sent while its first answer is held (see heldResponse). */
export interface HeldResponse {
  /** Lets the response go on as before (idempotent): the wrappers stay, passing every call through. */
  release(): void;
  /** Runs `fn` with the response unguarded (the holder's own header work), then guards it again. */
  unguarded<T>(fn: () => T): T;
}

/** Per response: whether it is held now, and what its wrapped members were. Installed once (see install). */
const kHold = Symbol('cluster-session.held');
interface HoldState {
  held: boolean;
  /** The member each wrapper stands for, as the response resolved it when the wrappers went in. */
  readonly before: Record<string, (...args: unknown[]) => unknown>;
  readonly sent: PropertyDescriptor | undefined;
}
type Held = ServerResponse & { [kHold]: HoldState };

/** The property as the response resolves it (own, or from its prototype chain). */
function descriptorOf(obj: object, name: string): PropertyDescriptor | undefined {
  for (let o: object | null = obj; o !== null; o = Object.getPrototypeOf(o)) {
    const d = Object.getOwnPropertyDescriptor(o, name);
    if (d) return d;
  }
  return undefined;
}

// The wrappers are shared by every response (no closures per response): each finds its response's state on `this`.
const headerWrappers = Object.fromEntries(
  HEADER_METHODS.map((name) => [
    name,
    function (this: Held, ...args: unknown[]) {
      const st = this[kHold];
      if (st.held) throw headersSentError();
      return st.before[name]!.apply(this, args);
    },
  ]),
) as Record<string, (...args: unknown[]) => unknown>;
// A write or end after the held end: express-session drops the second end the same way (returns false).
function heldWrite(this: Held, ...args: unknown[]) {
  const st = this[kHold];
  return st.held ? false : st.before.write!.apply(this, args);
}
function heldEnd(this: Held, ...args: unknown[]) {
  const st = this[kHold];
  return st.held ? this : st.before.end!.apply(this, args);
}
function heldHeadersSent(this: Held): boolean {
  const st = this[kHold];
  return st.held || Boolean(st.sent?.get ? st.sent.get.call(this) : st.sent?.value);
}

/**
 * Puts the wrappers on the response once; a hold and a release then only flip `held`. Defining and deleting own
 * properties on every save (the first way of doing this) switched every response object that saved a session to
 * dictionary mode, and with it every property access of the rest of its life (18 µs of a Redis save in a CPU
 * profile).
 */
function install(res: ServerResponse): HoldState {
  const bag = res as unknown as Record<string, (...args: unknown[]) => unknown>;
  const before: Record<string, (...args: unknown[]) => unknown> = {};
  for (const name of HEADER_METHODS) if (typeof bag[name] === 'function') before[name] = bag[name];
  before.write = bag.write!;
  before.end = bag.end!;
  const state: HoldState = { held: false, before, sent: descriptorOf(res, 'headersSent') };
  Object.defineProperty(res, kHold, { value: state });
  for (const name of HEADER_METHODS) if (before[name]) bag[name] = headerWrappers[name]!;
  bag.write = heldWrite;
  bag.end = heldEnd;
  Object.defineProperty(res, 'headersSent', { configurable: true, get: heldHeadersSent });
  return state;
}

/**
 * A session middleware holds the app's first `res.end()` while it saves the session (a failed save must still
 * change the answer), so for that moment the headers have not really gone out. To the app the response must look
 * as it does under express-session, whose headers are out by then: `headersSent` is true, a header change throws
 * ERR_HTTP_HEADERS_SENT to its caller (`res.json(a); res.json(b)` without a `return`), and a further write or end
 * is dropped instead of reaching Node as a write after end (an 'error' event nobody listens to: a crashed worker).
 * Methods assigned after the hold began (as the JWT middleware reassigns write and end) are the caller's own.
 */
export function heldResponse(res: ServerResponse): HeldResponse {
  const state = (res as Partial<Held>)[kHold] ?? install(res);
  state.held = true;
  return {
    release() {
      state.held = false;
    },
    unguarded<T>(fn: () => T): T {
      if (!state.held) return fn();
      state.held = false;
      try {
        return fn();
      } finally {
        state.held = true;
      }
    },
  };
}
