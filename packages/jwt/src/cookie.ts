import type { IncomingMessage, ServerResponse } from 'node:http';

export interface ResolvedCookie {
  readonly name: string;
  readonly secure: 'auto' | boolean;
  /** false: no SameSite attribute. */
  readonly sameSite: 'Lax' | 'Strict' | 'None' | 'auto' | false;
  readonly path: string;
  readonly domain: string | undefined;
  readonly httpOnly: boolean;
  readonly partitioned: boolean;
  readonly priority: 'low' | 'medium' | 'high' | undefined;
}

const PRIORITY = { low: 'Low', medium: 'Medium', high: 'High' } as const;

/** The whole Set-Cookie value (name, value, attributes) must fit browsers' per-cookie limit. */
export const COOKIE_LIMIT = 4096;

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

/**
 * The Expires text of a cookie that lives `seconds` from now. toUTCString() was 2% of a JWT request that renews its
 * token (CPU profile, bench/scenarios/session.ts `/hit`), and its text changes once a second: it is kept for the
 * second it names (the text drops the milliseconds, so any instant within that second gives the same one).
 */
let expiresSecond = NaN;
let expiresText = '';
function expiresIn(seconds: number): string {
  const second = Math.floor((Date.now() + seconds * 1000) / 1000);
  if (second !== expiresSecond) {
    expiresText = new Date(second * 1000).toUTCString();
    expiresSecond = second;
  }
  return expiresText;
}

/** `maxAgeSeconds`: > 0 a persistent cookie, 0 a deletion, null a browser-session cookie (no Max-Age/Expires). */
export function serializeCookie(c: ResolvedCookie, value: string, maxAgeSeconds: number | null, secure: boolean): string {
  let line = `${c.name}=${value}; Path=${c.path}`;
  if (c.domain) line += `; Domain=${c.domain}`;
  if (maxAgeSeconds === null) {
    // no expiry attributes: the browser drops the cookie when it closes
  } else if (maxAgeSeconds > 0) line += `; Max-Age=${maxAgeSeconds}; Expires=${expiresIn(maxAgeSeconds)}`;
  else line += '; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT';
  if (c.httpOnly) line += '; HttpOnly';
  if (secure) line += '; Secure';
  if (c.partitioned) line += '; Partitioned';
  if (c.priority) line += `; Priority=${PRIORITY[c.priority]}`;
  // 'auto' as express-session: None only where it can be (a Secure cookie), else Lax.
  const sameSite = c.sameSite === 'auto' ? (secure ? 'None' : 'Lax') : c.sameSite;
  return sameSite ? `${line}; SameSite=${sameSite}` : line;
}

/** Sets our cookie on the response, replacing an earlier line of the same name (a re-save) and keeping the app's. */
export function setCookieLine(res: ServerResponse, name: string, line: string): void {
  const prev = res.getHeader('set-cookie');
  if (prev === undefined) return void res.setHeader('set-cookie', [line]);
  const lines = Array.isArray(prev) ? prev : [String(prev)];
  res.setHeader('set-cookie', [...lines.filter((l) => !l.startsWith(`${name}=`)), line]);
}
