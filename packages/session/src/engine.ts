import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { heldResponse, isSecureRequest } from '@cluster-session/core';
import { parse as parseCookies, serialize as serializeCookie } from 'cookie';
import { Cookie, Session, type CookieOptions, type SessionData, type Store } from 'express-session';
import onHeaders from 'on-headers';
import parseUrl from 'parseurl';
import { dataJson } from './serializer.ts';

/**
 * Store mode's session middleware: express-session's, request for request (the same cookie, the same load,
 * save, touch and Set-Cookie decisions, its own Session and Cookie classes on `req.session`), written here for
 * what a profile of express-session showed on every request that reads a login:
 * - the cookie's signature was checked with one HMAC and two SHA-1 digests (cookie-signature 1.0's compare);
 *   here one HMAC and a timingSafeEqual, and none for an id whose signature was checked before (`Signatures`);
 * - "was the session modified?" hashed the session's JSON with SHA-1, through a replacer function, two to four
 *   times a request; here the JSON text itself is compared, which says the same thing.
 * The saves are made before the answer (store.ts decides which, through `saveFirst`); everything else keeps
 * express-session's order.
 */
export interface EngineOptions {
  store: Store;
  /** The first signs; each is tried in turn to verify (rotation). */
  secrets: readonly (string | Buffer)[];
  name: string;
  resave: boolean;
  saveUninitialized: boolean;
  rolling: boolean;
  unset: 'keep' | 'destroy';
  genid?: ((req: never) => string) | undefined;
  /** express-session's `proxy`: undefined defers to Express's req.secure. */
  trustProxy?: boolean | undefined;
  cookie: Omit<CookieOptions, 'sameSite'> & { sameSite?: CookieOptions['sameSite'] | 'auto' };
  /** Whether the request's session must be written before its answer goes out (store.ts's rule). */
  saveFirst(req: SessionRequest, sess: SessionData): boolean;
  /** Just before that save. */
  beforeSave(sess: SessionData): void;
  /** That save failed: answer in its place with `end` (the response's own end, past this middleware). */
  saveFailed(req: SessionRequest, res: ServerResponse, err: unknown, end: (body?: unknown) => void): void;
}

type SessionRequest = IncomingMessage & {
  session?: (Session & Partial<SessionData>) | undefined;
  sessionID?: string;
  sessionStore?: Store;
  signedCookies?: Record<string, unknown>;
  cookies?: Record<string, unknown>;
};

type Cb = (err?: unknown) => void;
type EngineStore = Store & { generate(req: SessionRequest): void };
type End = (this: ServerResponse, chunk?: unknown, encoding?: unknown, cb?: unknown) => ServerResponse;
const NewSession = Session as unknown as new (req: SessionRequest, data?: SessionData) => Session;
const NewCookie = Cookie as unknown as new (options?: CookieOptions) => Cookie & { data: CookieOptions };

const defer = (fn: (err?: unknown) => void, err: unknown) => setImmediate(fn, err);

const signatureOf = (value: string, secret: string | Buffer) => createHmac('sha256', secret).update(value).digest('base64').replace(/=+$/, '');

/**
 * The signed cookie values of the sessions seen lately, by session id: a repeat visit costs a constant-time compare
 * instead of an HMAC, and a Set-Cookie of the same id none. Keyed by the id (192 random bits by default), holding
 * the whole signed value verified for it (or made for it); any other value for that id (a forgery, or the id under
 * another secret) is checked by HMAC as the first was. Only verified or self-made values get in, so a client cannot
 * fill it with guesses; first in, first out.
 */
export class Signatures {
  readonly #known = new Map<string, { text: string; bytes: Buffer; first: boolean }>();
  readonly #limit: number;
  readonly #secrets: readonly (string | Buffer)[];

  constructor(secrets: readonly (string | Buffer)[], limit = 4096) {
    this.#secrets = secrets;
    this.#limit = limit;
  }

  get size(): number {
    return this.#known.size;
  }

  #remember(id: string, text: string, first: boolean): void {
    if (this.#known.size >= this.#limit && !this.#known.has(id)) this.#known.delete(this.#known.keys().next().value!);
    this.#known.set(id, { text, bytes: Buffer.from(text), first });
  }

  /** cookie-signature's sign with the first secret: `id.signature`. */
  sign(id: string): string {
    const known = this.#known.get(id);
    if (known?.first) return known.text;
    const text = `${id}.${signatureOf(id, this.#secrets[0]!)}`;
    this.#remember(id, text, true);
    return text;
  }

  /** cookie-signature's unsign over every secret: the id, or false. */
  unsign(signed: string): string | false {
    const id = signed.slice(0, signed.lastIndexOf('.'));
    const given = Buffer.from(signed);
    const known = this.#known.get(id);
    if (known && known.bytes.length === given.length && timingSafeEqual(known.bytes, given)) return id;
    // Not what was verified before (a forgery, or the id under another of the secrets): the HMACs decide.
    for (let i = 0; i < this.#secrets.length; i++) {
      const text = `${id}.${signatureOf(id, this.#secrets[i]!)}`;
      const expected = Buffer.from(text);
      if (expected.length !== given.length || !timingSafeEqual(expected, given)) continue;
      this.#remember(id, text, i === 0);
      return id;
    }
    return false;
  }
}

export function sessionEngine(o: EngineOptions) {
  const store = o.store as EngineStore;
  const { name, secrets, cookie: cookieOptions, trustProxy } = o;
  const generateId = (o.genid as ((req: SessionRequest) => string) | undefined) ?? (() => randomBytes(24).toString('base64url'));
  const signatures = new Signatures(secrets);
  const cookiePath = cookieOptions.path || '/';

  store.generate = (req) => {
    req.sessionID = generateId(req);
    req.session = new NewSession(req);
    const cookie = new NewCookie(cookieOptions as CookieOptions);
    (req.session as { cookie: Cookie }).cookie = cookie;
    const secure = isSecureRequest(req, trustProxy);
    if (cookieOptions.secure === 'auto') cookie.secure = secure;
    if (cookieOptions.sameSite === 'auto') cookie.sameSite = secure ? 'none' : 'lax';
  };
  const storeTouches = typeof store.touch === 'function';
  let storeReady = true;
  store.on('disconnect', () => void (storeReady = false));
  store.on('connect', () => void (storeReady = true));

  /** express-session's getcookie(): the header first, then cookie-parser's results. */
  const cookieId = (req: SessionRequest): string | undefined => {
    const header = req.headers.cookie;
    let val: string | false | undefined;
    if (header) {
      const raw = parseCookies(header)[name];
      if (raw && raw.startsWith('s:')) val = signatures.unsign(raw.slice(2)) || undefined;
    }
    if (!val && req.signedCookies) {
      const signed = req.signedCookies[name];
      if (signed) val = signed as string;
    }
    if (!val && req.cookies) {
      const raw = req.cookies[name];
      if (typeof raw === 'string' && raw.startsWith('s:')) val = signatures.unsign(raw.slice(2)) || undefined;
    }
    return val || undefined;
  };

  const setCookie = (res: ServerResponse, id: string, options: CookieOptions) => {
    const line = serializeCookie(name, `s:${signatures.sign(id)}`, options as Parameters<typeof serializeCookie>[2]);
    const prev = res.getHeader('Set-Cookie') ?? [];
    res.setHeader('Set-Cookie', Array.isArray(prev) ? prev.concat(line) : [String(prev), line]);
  };

  return function session(req: SessionRequest, res: ServerResponse, next: (err?: unknown) => void): void {
    if (req.session) return next();
    if (!storeReady) return next();
    if ((parseUrl.original(req as never)?.pathname || '/').indexOf(cookiePath) !== 0) return next();
    let originalJson: string | undefined;
    let originalId: string | undefined;
    let savedJson: string | undefined;
    let touched = false;
    req.sessionStore = store;
    const fromCookie = (req.sessionID = cookieId(req));

    const isModified = (sess: Session) => originalId !== sess.id || originalJson !== dataJson(sess);
    const isSaved = (sess: Session) => originalId === sess.id && savedJson === dataJson(sess);
    const shouldDestroy = () => Boolean(req.sessionID) && o.unset === 'destroy' && req.session == null;
    const shouldSave = (sess: Session) => {
      if (typeof req.sessionID !== 'string') return false;
      return !o.saveUninitialized && savedJson === undefined && fromCookie !== req.sessionID ? isModified(sess) : !isSaved(sess);
    };
    const shouldTouch = (sess: Session) => typeof req.sessionID === 'string' && fromCookie === req.sessionID && !shouldSave(sess);
    const shouldSetCookie = (sess: Session & { cookie: Cookie }) => {
      if (typeof req.sessionID !== 'string') return false;
      return fromCookie !== req.sessionID ? o.saveUninitialized || isModified(sess) : o.rolling || (sess.cookie.expires != null && isModified(sess));
    };

    onHeaders(res, () => {
      const sess = req.session as (Session & { cookie: Cookie & { data: CookieOptions } }) | undefined;
      if (!sess || !shouldSetCookie(sess)) return;
      if (sess.cookie.secure && !isSecureRequest(req, trustProxy)) return;
      if (!touched) {
        sess.touch();
        touched = true;
      }
      try {
        setCookie(res, req.sessionID!, sess.cookie.data);
      } catch (err) {
        defer(next, err);
      }
    });

    const _end = res.end as End;
    const _write = res.write as (this: ServerResponse, chunk: unknown, encoding?: unknown) => boolean;
    let ended = false;
    /** express-session's end: destroy, save or touch, with the headers and all but the body's last byte sent meanwhile. */
    const sessionEnd = (chunk: unknown, encoding: unknown): unknown => {
      if (ended) return false;
      ended = true;
      let ret: unknown;
      let sync = true;
      const writeend = () => {
        if (sync) {
          ret = _end.call(res, chunk, encoding);
          sync = false;
          return;
        }
        _end.call(res);
      };
      const writetop = () => {
        if (!sync) return ret;
        if (!res.headersSent) (res as unknown as { _implicitHeader(): void })._implicitHeader();
        if (chunk == null) return (ret = true);
        const contentLength = Number(res.getHeader('Content-Length'));
        if (!Number.isNaN(contentLength) && contentLength > 0) {
          // The last byte waits for the store, so the client cannot see the answer complete before it is done.
          chunk = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string, encoding as BufferEncoding);
          encoding = undefined;
          const buf = chunk as Buffer;
          if (buf.length !== 0) {
            ret = _write.call(res, buf.subarray(0, buf.length - 1));
            chunk = buf.subarray(buf.length - 1, buf.length);
            return ret;
          }
        }
        ret = _write.call(res, chunk, encoding);
        sync = false;
        return ret;
      };
      const after = (err?: unknown) => {
        if (err) defer(next, err);
        writeend();
      };
      if (shouldDestroy()) {
        store.destroy(req.sessionID!, after);
        return writetop();
      }
      const sess = req.session;
      if (!sess) return _end.call(res, chunk, encoding);
      if (!touched) {
        sess.touch();
        touched = true;
      }
      if (shouldSave(sess)) {
        sess.save(after);
        return writetop();
      }
      if (storeTouches && shouldTouch(sess)) {
        store.touch!(req.sessionID!, sess as unknown as SessionData, after as Cb);
        return writetop();
      }
      return _end.call(res, chunk, encoding);
    };

    res.end = function end(this: ServerResponse, chunk?: unknown, encoding?: unknown) {
      const sess = req.session;
      // A req.sessionID that is not a string (an app's bug): express-session saves nothing then, nor do we.
      if (res.headersSent || ended || !sess || typeof req.sessionID !== 'string' || !o.saveFirst(req, sess as unknown as SessionData)) return sessionEnd(chunk, encoding);
      // The save is made here, before the answer, rather than after the headers went out, so a failed save still
      // changes the answer. The expiry is reset (touch) first, or the store keeps the one the session was loaded with.
      sess.touch();
      touched = true;
      o.beforeSave(sess as unknown as SessionData);
      // While the save runs the response looks sent, as under express-session: a second res.json() throws
      // ERR_HTTP_HEADERS_SENT to its caller and a second end is dropped, so the first answer is the one that goes out.
      const held = heldResponse(res);
      sess.save((err?: unknown) => {
        held.release();
        if (!err) return void sessionEnd(chunk, encoding);
        // Then neither a save nor a cookie: nothing is half-saved.
        req.session = undefined;
        ended = true;
        o.saveFailed(req, res, err, (body) => void _end.call(res, body));
      });
      return this;
    } as ServerResponse['end'];

    const rewrap = (sess: Session, callback: Cb) =>
      function (this: unknown, err?: unknown) {
        if (req.session !== sess && req.session) wrap(req.session);
        callback.call(this, err);
      };
    /** express-session's wrapmethods(): save() records what was saved; reload() re-wraps the new session. */
    const wrap = (sess: Session) => {
      const reload = sess.reload;
      const save = sess.save;
      Object.defineProperty(sess, 'reload', {
        configurable: true,
        enumerable: false,
        writable: true,
        value: function (this: Session, callback: Cb) {
          return reload.call(this, rewrap(this, callback));
        },
      });
      Object.defineProperty(sess, 'save', {
        configurable: true,
        enumerable: false,
        writable: true,
        value: function (this: Session, ...args: unknown[]) {
          savedJson = dataJson(this);
          return (save as (...a: unknown[]) => Session).apply(this, args);
        },
      });
    };
    const generate = () => {
      store.generate(req);
      originalId = req.sessionID;
      originalJson = dataJson(req.session!);
      wrap(req.session!);
    };

    if (!req.sessionID) {
      generate();
      return next();
    }
    store.get(req.sessionID, (err: unknown, data?: SessionData | null) => {
      if (err && (err as { code?: string }).code !== 'ENOENT') return next(err);
      try {
        if (err || !data) generate();
        else {
          store.createSession(req as never, data);
          originalId = req.sessionID;
          originalJson = dataJson(data);
          if (!o.resave) savedJson = originalJson;
          wrap(req.session!);
        }
      } catch (e) {
        return next(e);
      }
      next();
    });
  };
}
