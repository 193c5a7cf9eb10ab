import type { IncomingMessage } from 'node:http';
import * as v from 'valibot';
import { rule, words } from './words.ts';

/** RFC 6265 token characters: what a cookie name may use. */
export const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Printable, no ';': a path or domain that cannot inject another attribute. */
const ATTRIBUTE = /^[\x21-\x3A\x3C-\x7E]+$/;

const cookieEntries = (defaultName: string) => ({
  name: v.optional(
    v.pipe(v.string(), v.regex(COOKIE_NAME), words({ allowed: 'a cookie name of RFC 6265 token characters', example: `'${defaultName}'` })),
    defaultName,
  ),
  secure: v.optional(
    v.pipe(v.union([v.boolean(), v.literal('auto')]), words({ allowed: "true, false or 'auto' (Secure when the request came over HTTPS)", example: 'true' })),
    'auto',
  ),
  // As express-session (the `cookie` package): true means Strict, false sends no SameSite attribute, and 'auto'
  // (express-session's) None when the request came over HTTPS, else Lax.
  sameSite: v.optional(
    v.pipe(
      v.union([v.pipe(v.string(), v.toLowerCase(), v.picklist(['lax', 'strict', 'none', 'auto'])), v.boolean()]),
      v.transform((s): 'lax' | 'strict' | 'none' | 'auto' | false => (s === true ? 'strict' : s)),
      words({ allowed: "'lax', 'strict', 'none', 'auto' (None over HTTPS, else Lax), true (Strict) or false (no SameSite attribute)", example: "'lax'" }),
    ),
    'lax',
  ),
  /** CHIPS: the cookie is kept per top-level site (third-party embeds). */
  partitioned: v.optional(v.pipe(v.boolean(), words({ allowed: 'true or false', example: 'true' })), false),
  priority: v.optional(
    v.pipe(v.string(), v.toLowerCase(), v.picklist(['low', 'medium', 'high']), words({ allowed: "'low', 'medium' or 'high'", example: "'high'" })),
  ),
  path: v.optional(v.pipe(v.string(), v.startsWith('/'), v.regex(ATTRIBUTE), words({ allowed: 'a path starting with /', example: "'/'" })), '/'),
  domain: v.optional(v.pipe(v.string(), v.regex(ATTRIBUTE), words({ allowed: 'a domain name', example: "'example.com'" }))),
});

type CookieEntries = ReturnType<typeof cookieEntries>;
type Fields<E extends v.ObjectEntries> = v.StrictObjectSchema<E, undefined>;
type CookieFields = v.InferOutput<Fields<CookieEntries>>;
type CookieInput<E extends v.ObjectEntries> = v.InferInput<Fields<CookieEntries & E>>;

/**
 * The cookie name prefix rules (RFC 6265bis 4.1.3): browsers refuse a `__Secure-` cookie without Secure and a
 * `__Host-` cookie without Secure, with a Domain or with a Path other than '/'. Also for attributes an app changes
 * on one session's cookie at run time (express-session's `req.session.cookie.secure = ...`), in either mode.
 */
export function prefixProblem(c: { name: string; secure: boolean | 'auto'; path: string; domain?: string | undefined }): string | undefined {
  if (c.name.startsWith('__Host-') && !(c.secure === true && c.path === '/' && !c.domain)) return 'a "__Host-" cookie needs secure: true, path "/" and no domain';
  if (c.name.startsWith('__Secure-') && c.secure !== true) return 'a "__Secure-" cookie needs secure: true';
  return undefined;
}

/**
 * The cookie options both session modes take (store mode's session id cookie, JWT mode's token cookie), with
 * `extra` options of one mode, and the rules between them defined here once, so the same cookie settings are
 * accepted or refused the same way in either mode. Left out, the cookie takes every default.
 */
export function cookieSchema<const E extends v.ObjectEntries = {}>(
  defaultName: string,
  extra?: E,
): v.OptionalSchema<v.GenericSchema<CookieInput<E>, v.InferOutput<Fields<CookieEntries & E>>>, CookieInput<E>> {
  // Typed as the fields the rules read: valibot's types do not follow a generic `extra` through a pipe.
  const object = v.strictObject({ ...cookieEntries(defaultName), ...extra }) as unknown as v.GenericSchema<unknown, CookieFields>;
  const checked = v.pipe(
    object,
    // 'auto' is not enough: over plain HTTP the cookie would go out SameSite=None without Secure, which browsers drop.
    rule<CookieFields>(
      'sameSite',
      { allowed: "'none' only with secure: true (browsers drop SameSite=None cookies that are not Secure)", fix: "set cookie.secure to true (HTTPS), or use sameSite 'lax'" },
      (c) => c.sameSite !== 'none' || c.secure === true,
    ),
    rule<CookieFields>(
      'partitioned',
      { allowed: 'true only with secure: true (browsers drop Partitioned cookies that are not Secure)', fix: 'set cookie.secure to true (HTTPS), or drop cookie.partitioned' },
      (c) => !c.partitioned || c.secure === true,
    ),
    rule<CookieFields>(
      'name',
      { allowed: 'a "__Host-" name only with secure: true, path "/" and no domain', fix: 'set cookie.secure to true, cookie.path to "/" and drop cookie.domain, or rename the cookie' },
      (c) => !c.name.startsWith('__Host-') || (c.secure === true && c.path === '/' && c.domain === undefined),
    ),
    rule<CookieFields>(
      'name',
      { allowed: 'a "__Secure-" name only with secure: true', fix: 'set cookie.secure to true, or rename the cookie' },
      (c) => !c.name.startsWith('__Secure-') || c.secure === true,
    ),
  );
  return v.optional(checked, {}) as never;
}

/**
 * Whether the request reached us over TLS, as express-session's issecure(): `trustProxy` undefined defers to
 * Express's req.secure (its 'trust proxy'), false never trusts X-Forwarded-Proto, true trusts its first value.
 */
export function isSecureRequest(req: IncomingMessage, trustProxy: boolean | undefined): boolean {
  if ((req.socket as { encrypted?: boolean }).encrypted) return true;
  if (trustProxy === undefined) return (req as { secure?: boolean }).secure === true;
  if (!trustProxy) return false;
  const proto = req.headers['x-forwarded-proto'];
  const first = (Array.isArray(proto) ? proto[0] : proto)?.split(',')[0]?.trim().toLowerCase();
  return first === 'https';
}
