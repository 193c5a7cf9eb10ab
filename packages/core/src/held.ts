import type { ServerResponse } from 'node:http';

/** The error Node throws for a header set after the headers went out (same code and words as node:_http_outgoing). */
export function headersSentError(): Error {
  return Object.assign(new Error('Cannot set headers after they are sent to the client'), { code: 'ERR_HTTP_HEADERS_SENT' });
}

const HEADER_METHODS = ['setHeader', 'appendHeader', 'removeHeader', 'writeHead', 'setHeaders'] as const;

/** A response made to look sent while its first answer is held (see heldResponse). */
export interface HeldResponse {
  /** Puts the response back as it was (idempotent). */
  release(): void;
  /** Runs `fn` with the response unguarded (the holder's own header work), then guards it again. */
  unguarded<T>(fn: () => T): T;
}

/** Per response: whether it is held now. Installed once, as wrappers that read it (see heldResponse). */
const kHold = Symbol('cluster-session.held');

/** The property as the response resolves it (own, or from its prototype chain). */
function descriptorOf(obj: object, name: string): PropertyDescriptor | undefined {
  for (let o: object | null = obj; o !== null; o = Object.getPrototypeOf(o)) {
    const d = Object.getOwnPropertyDescriptor(o, name);
    if (d) return d;
  }
  return undefined;
}

/**
 * Wraps the response's header methods, write, end and headersSent once, each reading one flag. Flipping the flag
 * is all a hold and a release do: defining and then deleting own properties on every save (the first way of doing
 * this) switched every response object that saved a session to dictionary mode, and with it every property access
 * of the rest of its life, a cost a CPU profile put at 18 µs of a Redis save.
 */
function install(res: ServerResponse): { held: boolean } {
  const state = { held: false };
  Object.defineProperty(res, kHold, { value: state });
  const bag = res as unknown as Record<string, unknown>;
  for (const name of HEADER_METHODS) {
    const original = bag[name];
    if (typeof original !== 'function') continue;
    bag[name] = function (this: unknown, ...args: unknown[]) {
      if (state.held) throw headersSentError();
      return original.apply(this, args);
    };
  }
  // A write or end after the held end: express-session drops the second end the same way (returns false).
  const write = res.write;
  bag.write = function (this: ServerResponse, ...args: unknown[]) {
    return state.held ? false : (write as (...a: unknown[]) => boolean).apply(this, args);
  };
  const end = res.end;
  bag.end = function (this: ServerResponse, ...args: unknown[]) {
    return state.held ? res : (end as (...a: unknown[]) => ServerResponse).apply(this, args);
  };
  const sent = descriptorOf(res, 'headersSent');
  Object.defineProperty(res, 'headersSent', {
    configurable: true,
    get(this: ServerResponse) {
      return state.held || Boolean(sent?.get ? sent.get.call(this) : sent?.value);
    },
  });
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
  const state = (res as unknown as Record<symbol, { held: boolean } | undefined>)[kHold] ?? install(res);
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
