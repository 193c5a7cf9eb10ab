import { opt } from './options.ts';
import type { RefineCtx } from './schema.ts';
import * as s from './builders.ts';
import type { RuleWords } from './words.ts';

/** RFC 6265 token characters: what a cookie name may use. */
export const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Printable, no ';': a path or domain that cannot inject another attribute. */
const ATTRIBUTE = /^[\x21-\x3A\x3C-\x7E]+$/;

/**
 * The cookie options both session modes take (store mode's session id cookie, JWT mode's token cookie), with
 * their rules defined here once, so the same cookie settings are accepted or refused the same way in either mode.
 */
export function cookieShape(defaultName: string) {
  return {
    name: opt(s.string().regex(COOKIE_NAME).default(defaultName), {
      allowed: 'a cookie name of RFC 6265 token characters',
      example: `'${defaultName}'`,
    }),
    secure: opt(s.union([s.boolean(), s.literal('auto')]).default('auto'), {
      allowed: "true, false or 'auto' (Secure when the request came over HTTPS)",
      example: 'true',
    }),
    sameSite: opt(s.string().toLowerCase().pipe(s.enum(['lax', 'strict', 'none'])).default('lax'), {
      allowed: "'lax', 'strict' or 'none'",
      example: "'lax'",
    }),
    path: opt(s.string().startsWith('/').regex(ATTRIBUTE).default('/'), { allowed: 'a path starting with /', example: "'/'" }),
    domain: opt(s.string().regex(ATTRIBUTE).optional(), { allowed: 'a domain name', example: "'example.com'" }),
  };
}

interface CookieFields {
  secure: boolean | 'auto';
  sameSite: 'lax' | 'strict' | 'none';
  name: string;
  path: string;
  domain?: string | undefined;
}

/** The rules between cookie options, for `.superRefine(cookieRules)` on an object built from cookieShape(). */
export function cookieRules(c: CookieFields, ctx: RefineCtx): void {
  const rule = (path: string, message: string, words: RuleWords) => ctx.addIssue({ path: [path], message, words });
  // 'auto' is not enough: over plain HTTP the cookie would go out SameSite=None without Secure, which browsers drop.
  if (c.sameSite === 'none' && c.secure !== true) {
    rule('sameSite', 'SameSite=None needs Secure', {
      allowed: "'none' only with secure: true (browsers drop SameSite=None cookies that are not Secure)",
      fix: "set cookie.secure to true (HTTPS), or use sameSite 'lax'",
    });
  }
  if (c.name.startsWith('__Host-') && (c.secure !== true || c.path !== '/' || c.domain !== undefined)) {
    rule('name', 'a __Host- cookie needs secure, path / and no domain', {
      allowed: 'a "__Host-" name only with secure: true, path "/" and no domain',
      fix: 'set cookie.secure to true, cookie.path to "/" and drop cookie.domain, or rename the cookie',
    });
  }
  if (c.name.startsWith('__Secure-') && c.secure !== true) {
    rule('name', 'a __Secure- cookie needs secure', { allowed: 'a "__Secure-" name only with secure: true', fix: 'set cookie.secure to true, or rename the cookie' });
  }
}
