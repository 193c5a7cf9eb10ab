import type { IncomingMessage, ServerResponse } from 'node:http';
import { JwtConfigError } from './errors.ts';

export interface CookieOptions {
  /** Default "session". */
  name?: string;
  /** 'auto' (default): Secure when the request came over TLS (or, with trustProxy, X-Forwarded-Proto: https). */
  secure?: 'auto' | boolean;
  /** Default 'lax'. 'none' requires secure: true. */
  sameSite?: 'lax' | 'strict' | 'none';
  /** Default "/". */
  path?: string;
  domain?: string;
}

export interface ResolvedCookie {
  name: string;
  secure: 'auto' | boolean;
  sameSite: 'Lax' | 'Strict' | 'None';
  path: string;
  domain: string | undefined;
}

/** The whole Set-Cookie value (name, value, attributes) must fit browsers' per-cookie limit. */
export const COOKIE_LIMIT = 4096;

const NAME_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const ATTR_RE = /^[\x21-\x3A\x3C-\x7E]+$/; // printable, no ';' (so no attribute injection)

export function resolveCookie(options: CookieOptions = {}): ResolvedCookie {
  if (typeof options !== 'object' || options === null) throw new JwtConfigError('cookie: expected an object { name, secure, sameSite, path, domain }.');
  const name = options.name ?? 'session';
  if (typeof name !== 'string' || !NAME_RE.test(name)) throw new JwtConfigError(`cookie.name: ${JSON.stringify(name)} is not a valid cookie name (RFC 6265 token characters).`);
  const secure = options.secure ?? 'auto';
  if (secure !== 'auto' && typeof secure !== 'boolean') throw new JwtConfigError(`cookie.secure: expected 'auto', true or false, got ${JSON.stringify(secure)}.`);
  const sameSiteIn = options.sameSite ?? 'lax';
  const sameSites: Record<string, ResolvedCookie['sameSite']> = { lax: 'Lax', strict: 'Strict', none: 'None' };
  const sameSite = sameSites[String(sameSiteIn).toLowerCase()];
  if (!sameSite) throw new JwtConfigError(`cookie.sameSite: expected 'lax', 'strict' or 'none', got ${JSON.stringify(sameSiteIn)}.`);
  if (sameSite === 'None' && secure !== true) throw new JwtConfigError("cookie.sameSite: 'none' is only accepted by browsers with Secure; set cookie.secure: true.");
  const path = options.path ?? '/';
  if (typeof path !== 'string' || !path.startsWith('/') || !ATTR_RE.test(path)) throw new JwtConfigError(`cookie.path: expected a path starting with "/", got ${JSON.stringify(path)}.`);
  const domain = options.domain;
  if (domain !== undefined && (typeof domain !== 'string' || !ATTR_RE.test(domain))) throw new JwtConfigError(`cookie.domain: ${JSON.stringify(domain)} is not a valid domain.`);
  if (name.startsWith('__Host-') && (secure !== true || path !== '/' || domain !== undefined))
    throw new JwtConfigError('cookie.name: a "__Host-" cookie needs secure: true, path "/" and no domain.');
  if (name.startsWith('__Secure-') && secure !== true) throw new JwtConfigError('cookie.name: a "__Secure-" cookie needs secure: true.');
  return { name, secure, sameSite, path, domain };
}

/** The named cookie's value from the request, or undefined. The first one wins (browsers send the most specific first). */
export function readCookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    return value;
  }
  return undefined;
}

/** `maxAgeSeconds`: > 0 a persistent cookie, 0 a deletion, null a browser-session cookie (no Max-Age/Expires). */
export function serializeCookie(c: ResolvedCookie, value: string, maxAgeSeconds: number | null, secure: boolean): string {
  let line = `${c.name}=${value}; Path=${c.path}`;
  if (c.domain) line += `; Domain=${c.domain}`;
  if (maxAgeSeconds === null) {
    // no expiry attributes: the browser drops the cookie when it closes
  } else if (maxAgeSeconds > 0) line += `; Max-Age=${maxAgeSeconds}; Expires=${new Date(Date.now() + maxAgeSeconds * 1000).toUTCString()}`;
  else line += '; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT';
  line += '; HttpOnly';
  if (secure) line += '; Secure';
  return `${line}; SameSite=${c.sameSite}`;
}

/** Sets our cookie on the response, replacing an earlier line of the same name (a re-save) and keeping the app's. */
export function setCookieLine(res: ServerResponse, name: string, line: string): void {
  const prev = res.getHeader('set-cookie');
  const lines = prev === undefined ? [] : Array.isArray(prev) ? prev : [String(prev)];
  res.setHeader('set-cookie', [...lines.filter((l) => !l.startsWith(`${name}=`)), line]);
}

/** Whether the request reached us over TLS. Express's req.secure (which honours its 'trust proxy') is used when present. */
export function isSecureRequest(req: IncomingMessage, trustProxy: boolean | undefined): boolean {
  if ((req.socket as { encrypted?: boolean }).encrypted) return true;
  if (trustProxy === undefined) return (req as { secure?: boolean }).secure === true;
  if (!trustProxy) return false;
  const proto = req.headers['x-forwarded-proto'];
  const first = (Array.isArray(proto) ? proto[0] : proto)?.split(',')[0]?.trim().toLowerCase();
  return first === 'https';
}
