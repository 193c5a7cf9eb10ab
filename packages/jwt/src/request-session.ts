import type { IncomingMessage, ServerResponse } from 'node:http';
import { answerFrom, deadline, isAnswerable, isSecureRequest, prefixProblem, sendAnswer, type HeldResponse } from '@cluster-session/core';
import { COOKIE_LIMIT, serializeCookie, setCookieLine, type ResolvedCookie } from './cookie.ts';
import {
  JwtDenyListUnavailableError,
  JwtHeadersSentError,
  JwtReservedClaimError,
  JwtRevokedError,
  JwtSaveError,
  JwtTooLargeError,
} from './errors.ts';
import type { ResolvedOptions } from './options.ts';
import type { VerifiedToken } from './ring.ts';
import {
  isReservedName,
  JwtSession,
  loadData,
  newState,
  sessionJson,
  stateOf,
  type CookieAttributes,
  type SessionController,
  type SessionCookieView,
  type SessionState,
} from './session.ts';

export type Transport = 'cookie' | 'bearer';

const nowSeconds = () => Math.floor(Date.now() / 1000);
type Claims = Record<string, unknown> & { iat: number; exp: number; jti: string };

/** Bounds a deny-list call: a store that hangs or fails must turn into a 503, never a hung request or a 500. */
export function bounded<T>(work: Promise<T> | T, ms: number, what: string): Promise<T> | T {
  // An answer already there (a deny-list view in memory): nothing to wait for, so no timer on the request's path.
  if (!(work instanceof Promise)) return work;
  return deadline(work, ms, () => new JwtDenyListUnavailableError(`deny list did not answer ${what} within ${ms} ms`)).catch((err: unknown) => {
    throw err instanceof JwtDenyListUnavailableError ? err : new JwtDenyListUnavailableError(`deny list failed on ${what}`, { cause: err });
  });
}

/** One request's session: loads it from the verified token, and issues, renews, revokes and clears tokens. */
export class RequestSession implements SessionController {
  current: JwtSession | undefined;
  readonly #o: ResolvedOptions;
  readonly #req: IncomingMessage & { session?: JwtSession; sessionID?: string };
  readonly #res: ServerResponse;
  readonly #transport: Transport;

  constructor(o: ResolvedOptions, req: IncomingMessage, res: ServerResponse, transport: Transport, loaded: VerifiedToken | undefined) {
    this.#o = o;
    this.#req = req;
    this.#res = res;
    this.#transport = transport;
    if (!loaded) {
      this.#attach(new JwtSession(this, newState(), {}));
      return;
    }
    const { payload } = loaded;
    const state: SessionState = {
      jti: payload.jti,
      iat0: typeof payload.iat0 === 'number' ? payload.iat0 : payload.iat,
      iat: payload.iat,
      exp: payload.exp,
      snapshot: '',
      isNew: false,
      force: false,
      lifetime: payload.ttl === 0 ? null : typeof payload.ttl === 'number' && payload.ttl > 0 ? payload.ttl : undefined,
      ...attributesClaim(payload.cka),
    };
    const session = new JwtSession(this, state, payload);
    state.snapshot = sessionJson(session);
    this.#attach(session);
  }

  #attach(session: JwtSession | undefined): void {
    this.current = session;
    this.#req.session = session;
    if (session) this.#req.sessionID = session.id;
  }

  /** Called just before the response's headers go out: a promise when a token is being issued, 'issued' when it was at once, else undefined. */
  beforeHeaders(hold?: Pick<HeldResponse, 'unguarded'>): Promise<void> | 'issued' | undefined {
    const session = this.current;
    if (!session) return undefined;
    const state = stateOf(session);
    // The data is serialized once here and that JSON is what gets signed: nothing runs between the two.
    const json = state.ended ? '' : sessionJson(session);
    if (!this.#needsIssue(json, state)) return undefined;
    // Signed here and now when the codec can (HS256): then the response is not held for a promise. A throw goes
    // the same way as a rejection (hold-response.ts answers with onFailure).
    return this.#issueNow(session, state, json) ? 'issued' : this.#issue(session, state, json, hold);
  }

  #needsIssue(json: string, state: SessionState): boolean {
    if (state.ended) return false;
    if (state.force) return true;
    if (json !== state.snapshot) return json !== state.rejected;
    if (state.isNew) return false; // an untouched new session is not worth a token (express-session's saveUninitialized: false)
    if (this.#o.rolling) return true; // express-session's rolling: a fresh expiry on every response
    // Sliding expiry: renew past half the lifetime, unless the absolute cap leaves nothing to extend.
    const now = nowSeconds();
    return now - state.iat >= this.#ttl(state) / 2 && this.#expiry(state, now) > state.exp;
  }

  /** Token lifetime of this session: its own (cookie.maxAge) or the configured ttl. */
  #ttl(state: SessionState): number {
    return typeof state.lifetime === 'number' ? state.lifetime : this.#o.ttl;
  }

  /** The exp a token issued now gets: a full ttl, capped by the absolute max age (at least the session's own ttl). */
  #expiry(state: SessionState, now: number): number {
    const ttl = this.#ttl(state);
    return Math.min(now + ttl, state.iat0 + Math.max(this.#o.maxAge, ttl));
  }

  /** `json`: the session's data as serialized by save(); `hold`: the response held for this issue (hold-response.ts), whose headers our own Set-Cookie may still change. */
  async #issue(session: JwtSession, state: SessionState, json: string, hold?: Pick<HeldResponse, 'unguarded'>): Promise<void> {
    const res = this.#res;
    const ours = <T>(fn: () => T): T => (hold ? hold.unguarded(fn) : fn());
    if (res.headersSent) throw new JwtHeadersSentError('save');
    if (state.expired) {
      // cookie.maxAge = 0 or a past expires: as in express-session the cookie expires; the token is revoked too.
      await this.#revoke(state);
      ours(() => this.#clearCookie());
      Object.assign(state, { ended: true, expired: false, force: false, snapshot: json });
      return;
    }
    const next = this.#next(state, json, session);
    if (!next) return;
    const token = await this.#o.codec.encode(next.claims);
    if (this.current !== session) return; // regenerated or destroyed while signing: that outcome wins
    ours(() => this.#deliver(state, json, token, next));
  }

  /**
   * #issue() without a promise, when the codec signs synchronously and nothing needs the deny list (not an
   * expired cookie): true when done, false to leave it to #issue() (which then does all of it, from the start).
   */
  #issueNow(session: JwtSession, state: SessionState, json: string): boolean {
    const { encodeSync } = this.#o.codec;
    if (!encodeSync || state.expired) return false;
    if (this.#res.headersSent) throw new JwtHeadersSentError('save');
    const next = this.#next(state, json, session);
    if (!next) return true;
    const token = encodeSync(next.claims);
    // An input the fast signer leaves to jose: #issue() lets jose sign it, or throw its own error.
    if (token === undefined) return false;
    this.#deliver(state, json, token, next);
    return true;
  }

  /** The claims of the token to issue now, or undefined when the absolute max age ended the session instead. */
  #next(state: SessionState, json: string, session: JwtSession): { claims: Claims; exp: number; now: number } | undefined {
    const data = JSON.parse(json) as Record<string, unknown>;
    // JSON keys are a subset of the own enumerable keys unless a reserved toJSON is set, so when no own key is
    // reserved no JSON key is either; only then is the parsed data's key list skipped.
    if (Object.keys(session).some(isReservedName) || typeof (session as { toJSON?: unknown }).toJSON === 'function')
      for (const name of Object.keys(data)) if (isReservedName(name)) throw new JwtReservedClaimError(name);
    const now = nowSeconds();
    const exp = this.#expiry(state, now);
    if (exp <= now) {
      // The absolute max age is reached: there is no lifetime left to give, so the session ends here.
      this.#attach(undefined);
      this.#clearCookie();
      return undefined;
    }
    const claims: Claims = { ...data, iat0: state.iat0, iat: now, exp, jti: state.jti };
    if (state.lifetime !== undefined) Object.assign(claims, { ttl: state.lifetime ?? 0 });
    if (state.attrs && Object.keys(state.attrs).length > 0) Object.assign(claims, { cka: state.attrs });
    return { claims, exp, now };
  }

  /** Puts the token on the response (cookie or header) and records it as the session's current one. */
  #deliver(state: SessionState, json: string, token: string, { exp, now }: { exp: number; now: number }): void {
    const res = this.#res;
    if (res.headersSent) throw new JwtHeadersSentError('save');
    if (this.#transport === 'cookie') {
      const line = serializeCookie(this.#cookieOf(state), token, state.lifetime === null ? null : exp - now, this.#secureOf(state));
      const size = Buffer.byteLength(line);
      if (size > COOKIE_LIMIT) throw new JwtTooLargeError(size, COOKIE_LIMIT, 'Set-Cookie header');
      setCookieLine(res, this.#o.cookie.name, line);
    } else {
      if (token.length > this.#o.maxTokenLength) throw new JwtTooLargeError(token.length, this.#o.maxTokenLength, 'bearer token');
      res.setHeader(this.#o.tokenHeader, token);
      // A token in a response header must never land in a shared cache.
      if (!res.hasHeader('cache-control')) res.setHeader('cache-control', 'no-store');
    }
    Object.assign(state, { iat: now, exp, snapshot: json, isNew: false, force: false });
  }

  #secure(): boolean {
    const { secure } = this.#o.cookie;
    return secure === 'auto' ? isSecureRequest(this.#req, this.#o.trustProxy) : secure;
  }

  /** The cookie attributes of this session: the options, with what it set on `req.session.cookie` over them. */
  #cookieOf(state: SessionState | undefined): ResolvedCookie {
    const a = state?.attrs;
    return a ? { ...this.#o.cookie, ...a, name: this.#o.cookie.name } : this.#o.cookie;
  }

  #secureOf(state: SessionState | undefined): boolean {
    return state?.attrs?.secure ?? this.#secure();
  }

  #clearCookie(state: SessionState | undefined = this.current ? stateOf(this.current) : undefined): void {
    if (this.#transport !== 'cookie' || this.#res.headersSent) return;
    setCookieLine(this.#res, this.#o.cookie.name, serializeCookie(this.#cookieOf(state), '', 0, this.#secureOf(state)));
  }

  async #revoke(state: SessionState): Promise<void> {
    const { denyList, clockTolerance, denyListTimeout } = this.#o;
    if (!denyList || state.isNew) return;
    // Another response may have renewed this jti meanwhile: deny until the latest expiry any copy could have.
    const until = Math.max(state.exp, this.#expiry(state, nowSeconds())) + clockTolerance;
    await bounded(denyList.add(state.jti, until * 1000), denyListTimeout, 'add');
  }

  async save(session: JwtSession): Promise<void> {
    if (session !== this.current) return; // a session replaced by regenerate() has nothing to save
    const state = stateOf(session);
    try {
      await this.#issue(session, state, sessionJson(session));
    } catch (err) {
      // The caller gets the error; the client keeps its previous token rather than a second failure at the end.
      state.rejected = sessionJson(session);
      throw err;
    }
  }

  async regenerate(session: JwtSession): Promise<void> {
    if (this.#res.headersSent) throw new JwtHeadersSentError('regenerate');
    await this.#revoke(stateOf(session));
    const state = newState();
    state.force = true; // the new id must replace the old token even if no data is set
    this.#attach(new JwtSession(this, state, {}));
  }

  async destroy(session: JwtSession): Promise<void> {
    // Revoke first: if the deny list is down, the session and cookie stay, so the client can retry the logout
    // instead of losing the cookie while the token remains valid elsewhere.
    const state = stateOf(session);
    await this.#revoke(state);
    if (session === this.current) {
      this.#attach(undefined);
      delete this.#req.session;
    }
    this.#clearCookie(state);
  }

  async reload(session: JwtSession): Promise<void> {
    const state = stateOf(session);
    const { denyList, denyListTimeout } = this.#o;
    if (denyList && !state.isNew && (await bounded(denyList.has(state.jti), denyListTimeout, 'has'))) throw new JwtRevokedError();
    for (const name of Object.keys(session)) if (name !== 'cookie') delete (session as unknown as Record<string, unknown>)[name];
    loadData(session, JSON.parse(state.snapshot) as Record<string, unknown>);
  }

  touch(session: JwtSession): void {
    stateOf(session).force = true;
  }

  cookie(session: JwtSession): SessionCookieView {
    const state = stateOf(session);
    return (state.view ??= this.#cookieView(state));
  }

  #cookieView(state: SessionState): SessionCookieView {
    const expiresMs = () => (state.isNew || state.force ? Date.now() + this.#ttl(state) * 1000 : state.exp * 1000);
    const setLifetime = (ms: unknown) => {
      if (ms !== null && (typeof ms !== 'number' || Number.isNaN(ms)))
        throw new TypeError(`req.session.cookie.maxAge: expected milliseconds or null, got ${String(ms)}`);
      if (ms !== null && ms <= 0) state.expired = true;
      else state.lifetime = ms === null || ms === Infinity ? null : Math.ceil(ms / 1000);
      state.force = true;
    };
    const attr = <K extends keyof CookieAttributes>(key: K, read: () => unknown, parse: (value: unknown) => CookieAttributes[K]) => ({
      enumerable: true,
      get: read,
      set: (value: unknown) => {
        const next = { ...state.attrs, [key]: parse(value) };
        const problem = prefixProblem({ ...this.#cookieOf(state), ...next, secure: next.secure ?? this.#o.cookie.secure });
        if (problem) throw new TypeError(`req.session.cookie.${key}: ${problem}`);
        state.attrs = next;
        state.force = true;
      },
    });
    const c = () => this.#cookieOf(state);
    const view = {} as SessionCookieView;
    // Like express-session's Cookie: every field is assignable and applies to this session's cookie from now on.
    Object.defineProperties(view, {
      maxAge: {
        enumerable: true,
        get: () => (state.expired ? 0 : state.lifetime === null ? null : Math.max(0, expiresMs() - Date.now())),
        set: setLifetime,
      },
      expires: {
        enumerable: true,
        get: () => (state.expired ? new Date(0) : state.lifetime === null ? null : new Date(expiresMs())),
        set: (d: unknown) => setLifetime(d === null ? null : d instanceof Date ? d.getTime() - Date.now() : NaN),
      },
      originalMaxAge: { enumerable: true, get: () => (state.lifetime === null ? null : this.#ttl(state) * 1000) },
      httpOnly: attr('httpOnly', () => c().httpOnly, (v) => boolOf('httpOnly', v)),
      secure: attr('secure', () => this.#secureOf(state), (v) => boolOf('secure', v)),
      sameSite: attr('sameSite', () => (c().sameSite === false ? false : String(c().sameSite).toLowerCase()), sameSiteOf),
      path: attr('path', () => c().path, (v) => textOf('path', v)),
      domain: attr('domain', () => c().domain, (v) => (v === undefined || v === null ? undefined : textOf('domain', v))),
      partitioned: attr('partitioned', () => c().partitioned, (v) => boolOf('partitioned', v)),
      priority: attr('priority', () => c().priority, priorityOf),
      toJSON: {
        value: () => ({ originalMaxAge: view.originalMaxAge, expires: view.expires, secure: view.secure, httpOnly: view.httpOnly, domain: view.domain, path: view.path, sameSite: view.sameSite, partitioned: view.partitioned, priority: view.priority }),
      },
    });
    return view;
  }

  report(err: unknown): void {
    this.#o.onError(err instanceof Error ? err : new Error(String(err)), this.#req);
  }

  /** Answers in place of the app's response when the token could not be issued (too large, reserved claim). */
  fail(err: unknown): void {
    this.report(err);
    const answerable = isAnswerable(err) ? err : new JwtSaveError('the session token could not be issued', { cause: err });
    sendAnswer(this.#res, answerFrom(answerable), { replace: true });
  }
}

/** Printable, no ';': a path or domain that cannot inject another attribute (core's cookie option rule). */
const ATTRIBUTE = /^[\x21-\x3A\x3C-\x7E]+$/;
const boolOf = (key: string, v: unknown): boolean => {
  if (typeof v !== 'boolean') throw new TypeError(`req.session.cookie.${key}: expected true or false, got ${String(v)}`);
  return v;
};
const textOf = (key: string, v: unknown): string => {
  if (typeof v !== 'string' || !ATTRIBUTE.test(v) || (key === 'path' && !v.startsWith('/')))
    throw new TypeError(`req.session.cookie.${key}: expected ${key === 'path' ? 'a path starting with /' : 'a domain name'}, got ${String(v)}`);
  return v;
};
const SAME_SITE = { lax: 'Lax', strict: 'Strict', none: 'None' } as const;
function sameSiteOf(v: unknown): CookieAttributes['sameSite'] {
  if (v === true) return 'Strict';
  if (v === false || v === undefined) return false;
  const s = typeof v === 'string' ? SAME_SITE[v.toLowerCase() as keyof typeof SAME_SITE] : undefined;
  if (!s) throw new TypeError(`req.session.cookie.sameSite: expected 'lax', 'strict', 'none', true or false, got ${String(v)}`);
  return s;
}
function priorityOf(v: unknown): CookieAttributes['priority'] {
  if (v === undefined || v === null) return undefined;
  const p = typeof v === 'string' ? v.toLowerCase() : '';
  if (p !== 'low' && p !== 'medium' && p !== 'high') throw new TypeError(`req.session.cookie.priority: expected 'low', 'medium' or 'high', got ${String(v)}`);
  return p;
}

/** The `cka` claim back into attributes: only known keys with values of the right type (the token is signed, but stay strict). */
function attributesClaim(cka: unknown): { attrs?: CookieAttributes } {
  if (!cka || typeof cka !== 'object') return {};
  const attrs: CookieAttributes = {};
  const c = cka as Record<string, unknown>;
  for (const key of ['httpOnly', 'secure', 'partitioned'] as const) if (typeof c[key] === 'boolean') attrs[key] = c[key] as boolean;
  for (const key of ['path', 'domain'] as const) if (typeof c[key] === 'string' && ATTRIBUTE.test(c[key] as string)) attrs[key] = c[key] as string;
  if (c.sameSite === false || (typeof c.sameSite === 'string' && Object.values(SAME_SITE).includes(c.sameSite as never))) attrs.sameSite = c.sameSite as CookieAttributes['sameSite'];
  if (c.priority === 'low' || c.priority === 'medium' || c.priority === 'high') attrs.priority = c.priority;
  return Object.keys(attrs).length > 0 ? { attrs } : {};
}
