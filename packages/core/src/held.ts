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

/**
 * Per response: whether it is held now, and what its wrapped members were. Installed once (see install), and the
 * handle heldResponse() returns.
 *
 * A class, not object literals: V8 pretenures an object literal's allocation site once its objects are seen to
 * survive (here, while a save is in flight at a young collection), and from then on allocates them in the old
 * generation. A dead old object is only found dead by a full collection, so until then everything it references
 * (the wrapped end, through it the request, its session and response) survived every young collection and was
 * promoted: ~9 MB per scavenge on Redis /hit, 15-20 ms pauses (`--trace-gc-nvp`, and none of it with
 * `--no-allocation-site-pretenuring`). `new` of a class has no allocation site.
 */
class HoldState implements HeldResponse {
  held = false;
  /** The members each wrapper stands for, as the response resolved them when the wrappers went in. */
  readonly setHeader: Fn | undefined;
  readonly appendHeader: Fn | undefined;
  readonly removeHeader: Fn | undefined;
  readonly writeHead: Fn | undefined;
  readonly setHeaders: Fn | undefined;
  readonly write: Fn;
  readonly end: Fn;
  readonly sent: PropertyDescriptor | undefined;

  constructor(res: Record<string, Fn>, sent: PropertyDescriptor | undefined) {
    // The fields above are declared, so every state has one shape whichever methods a response has.
    const members = this as Record<HeaderMethod, Fn | undefined>;
    for (const name of HEADER_METHODS) members[name] = typeof res[name] === 'function' ? res[name] : undefined;
    this.write = res.write!;
    this.end = res.end!;
    this.sent = sent;
  }

  release(): void {
    this.held = false;
  }

  unguarded<T>(fn: () => T): T {
    if (!this.held) return fn();
    this.held = false;
    try {
      return fn();
    } finally {
      this.held = true;
    }
  }
}
type Fn = (...args: unknown[]) => unknown;
type HeaderMethod = (typeof HEADER_METHODS)[number];
const kHold = Symbol('cluster-session.held');
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
      return st[name as HeaderMethod]!.apply(this, args);
    },
  ]),
) as Record<string, Fn>;
// A write or end after the held end: express-session drops the second end the same way (returns false).
function heldWrite(this: Held, ...args: unknown[]) {
  const st = this[kHold];
  return st.held ? false : st.write.apply(this, args);
}
function heldEnd(this: Held, ...args: unknown[]) {
  const st = this[kHold];
  return st.held ? this : st.end.apply(this, args);
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
  const bag = res as unknown as Record<string, Fn>;
  const state = new HoldState(bag, descriptorOf(res, 'headersSent'));
  Object.defineProperty(res, kHold, { value: state });
  for (const name of HEADER_METHODS) if (state[name]) bag[name] = headerWrappers[name]!;
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
  return state;
}
