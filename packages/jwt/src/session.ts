import { randomUUID } from 'node:crypto';

/** What a session's token currently says; owned by the request that loaded it. */
export interface SessionState {
  /** The session id: the token's `jti`, kept across renewals, new on regenerate(). */
  jti: string;
  /** When the session began (seconds): the absolute maximum age counts from here. Carried as the `iat0` claim. */
  iat0: number;
  /** iat/exp of the token the client holds (0 when none was issued yet). */
  iat: number;
  exp: number;
  /** JSON of the data as last loaded or issued: a response re-issues only when the data differs from it. */
  snapshot: string;
  /** No token has been issued for this session yet. */
  isNew: boolean;
  /** Issue a token at the end of the request even if nothing changed (regenerate, touch). */
  force: boolean;
  /** JSON of data whose explicit save() failed (and was reported to its callback): not retried at response end. */
  rejected?: string;
  /**
   * This session's own lifetime, set through `req.session.cookie.maxAge` (e.g. "remember me"); carried as the `ttl`
   * claim. undefined: the configured ttl; a number: seconds; null: a browser-session cookie (no Max-Age).
   */
  lifetime?: number | null;
  /** `cookie.maxAge` was set to 0 or less (or `expires` to the past): the response ends the token, clearing the cookie. */
  expired?: boolean;
  /** The token was ended by `expired`: nothing more is issued in this request. */
  ended?: boolean;
  /** Cookie attributes this session set for itself (`req.session.cookie.secure = true`); carried as the `cka` claim. */
  attrs?: CookieAttributes;
  /** The one `req.session.cookie` object of this session (so what is written to it reads back). */
  view?: SessionCookieView;
}

/** The attributes of the cookie one session may change for itself, as on express-session's Cookie. */
export interface CookieAttributes {
  httpOnly?: boolean;
  secure?: boolean;
  sameSite?: 'Lax' | 'Strict' | 'None' | false;
  path?: string;
  domain?: string | undefined;
  partitioned?: boolean;
  priority?: 'low' | 'medium' | 'high' | undefined;
}

export interface SessionCookieView {
  /** Milliseconds left; assign (ms, or null for a browser-session cookie; 0 or less ends the session) to change this session's lifetime. */
  maxAge: number | null;
  readonly originalMaxAge: number | null;
  /** When the token expires; assign a Date (or null) as an alternative to maxAge. */
  expires: Date | null;
  httpOnly: boolean;
  secure: boolean;
  /** 'lax' | 'strict' | 'none' | true (strict) | false (no attribute), as express-session's Cookie. */
  sameSite: string | boolean;
  path: string;
  domain: string | undefined;
  partitioned: boolean;
  priority: string | undefined;
}

/** The request-side logic a session delegates to (see request-session.ts). */
export interface SessionController {
  save(s: JwtSession): Promise<void>;
  regenerate(s: JwtSession): Promise<void>;
  destroy(s: JwtSession): Promise<void>;
  reload(s: JwtSession): Promise<void>;
  touch(s: JwtSession): void;
  cookie(s: JwtSession): SessionCookieView;
  report(err: unknown): void;
}

/** Claims the token needs for itself: the app cannot store data under these names. */
const REGISTERED_CLAIMS = new Set(['iss', 'aud', 'exp', 'nbf', 'iat', 'jti', 'iat0', 'ttl', 'cka']);
/** Names the session object uses itself, plus ones that would change an object's prototype. */
const OWN_NAMES = new Set(['id', 'cookie', 'save', 'regenerate', 'destroy', 'reload', 'touch', 'resetMaxAge', '__proto__', 'constructor', 'toJSON']);

export function isReservedName(name: string): boolean {
  return REGISTERED_CLAIMS.has(name) || OWN_NAMES.has(name);
}

export function newState(): SessionState {
  const now = Math.floor(Date.now() / 1000);
  return { jti: randomUUID(), iat0: now, iat: 0, exp: 0, snapshot: '{}', isNew: true, force: false };
}

type Callback = (err?: unknown) => void;

let stateOf: (s: JwtSession) => SessionState;
let controllerOf: (s: JwtSession) => SessionController;

/**
 * One getter for every session, never a closure per session: V8 cannot share a hidden class between accessors
 * with different getters, so a getter per session turned each one into a dictionary-mode object, and every
 * request's objects were then promoted to the old generation, freed only by full collections (about 5.7 KiB per
 * request; test/hidden-classes.test.ts in the session package checks the shape).
 */
const COOKIE_PROPERTY: PropertyDescriptor = {
  enumerable: true,
  get(this: JwtSession) {
    return controllerOf(this).cookie(this);
  },
};

/**
 * `req.session` in JWT mode, shaped like express-session's Session so the same app code runs in both modes: data
 * lives in own enumerable properties (each a token claim); methods, `id` and `cookie` live on the prototype.
 */
export class JwtSession {
  #controller: SessionController;
  #state: SessionState;

  static {
    stateOf = (s) => s.#state;
    controllerOf = (s) => s.#controller;
  }

  constructor(controller: SessionController, state: SessionState, data: Record<string, unknown>) {
    this.#controller = controller;
    this.#state = state;
    // An own enumerable key, as on express-session's Session (Object.keys, JSON of req.session list it).
    Object.defineProperty(this, 'cookie', COOKIE_PROPERTY);
    loadData(this, data, true);
  }

  /** The session id (the token's jti). */
  get id(): string {
    return this.#state.jti;
  }

  /** The cookie's settings, each assignable for this session: `maxAge`/`expires` (its lifetime) and the attributes. */
  declare readonly cookie: SessionCookieView;

  /** Issues a token for the current data now; the callback gets a JwtTooLargeError if it would not fit. */
  save(callback?: Callback): this {
    settle(this, this.#controller.save(this), callback);
    return this;
  }

  /** Replaces req.session with an empty session under a new id (against fixation); the old id is revoked. */
  regenerate(callback: Callback): this {
    settle(this, this.#controller.regenerate(this), callback);
    return this;
  }

  /** Clears the cookie, revokes the id on the deny list (when configured) and removes req.session. */
  destroy(callback?: Callback): this {
    settle(this, this.#controller.destroy(this), callback);
    return this;
  }

  /** Discards unsaved changes (back to the data of the last token) and re-checks the deny list. */
  reload(callback: Callback): this {
    settle(this, this.#controller.reload(this), callback);
    return this;
  }

  /** Re-issues the token with a fresh expiry at the end of the request (within the absolute max age). */
  touch(): this {
    this.#controller.touch(this);
    return this;
  }

  resetMaxAge(): this {
    return this.touch();
  }
}

export { stateOf };

/** The session's data as JSON, without its `cookie` (the token's claims; express-session's hash leaves it out too). */
export function sessionJson(session: JwtSession): string {
  // Key by key rather than a replacer: JSON.stringify would call the replacer for every value at every depth, and
  // read `cookie` (a getter building the cookie view) only to drop it.
  const data: Record<string, unknown> = {};
  for (const key of Object.keys(session)) if (key !== 'cookie') data[key] = (session as unknown as Record<string, unknown>)[key];
  return JSON.stringify(data);
}

/**
 * Copies claims onto a session as plain data properties, skipping names the session or the token own. `fresh`: the
 * session has no data properties yet (its constructor), so an assignment makes the same own, enumerable, writable
 * property as defineProperty would, at a fraction of the cost (what could make it differ is a setter on the
 * prototype chain, and the only ones there, `id`, `cookie` and Object.prototype's `__proto__`, are reserved names).
 * A reload defines them, as before: a property the app redefined (non-enumerable, say) is redefined.
 */
export function loadData(session: JwtSession, data: Record<string, unknown>, fresh = false): void {
  for (const [name, value] of Object.entries(data)) {
    if (isReservedName(name)) continue;
    if (fresh) (session as unknown as Record<string, unknown>)[name] = value;
    else Object.defineProperty(session, name, { value, enumerable: true, writable: true, configurable: true });
  }
}

function settle(session: JwtSession, work: Promise<void>, callback: Callback | undefined): void {
  if (callback) work.then(() => callback(), callback);
  else work.catch((err: unknown) => controllerOf(session).report(err));
}
