import { prefixProblem } from '@cluster-session/core';
import type { Store } from 'express-session';

type Attrs = { secure?: unknown; path?: unknown; domain?: unknown };

/**
 * The `__Host-`/`__Secure-` prefix rules (core's cookieSchema at startup) for what a route changes on
 * `req.session.cookie` at run time in store mode: an assignment that breaks them throws a TypeError where it is
 * made, as JWT mode's cookie does, instead of a Set-Cookie the browser silently drops (a user who can never log
 * in). Only cookies with such a name are guarded: others keep express-session's plain Cookie.
 */
export function guardCookiePrefix(store: Store, name: string): void {
  if (!name.startsWith('__Host-') && !name.startsWith('__Secure-')) return;
  const guard = (sess: { cookie?: object } | undefined) => {
    const cookie = sess?.cookie as (Attrs & object) | undefined;
    if (!cookie) return;
    const values: Attrs = { secure: cookie.secure, path: cookie.path, domain: cookie.domain };
    for (const key of ['secure', 'path', 'domain'] as const) {
      Object.defineProperty(cookie, key, {
        enumerable: true,
        configurable: true,
        get: () => values[key],
        set: (value: unknown) => {
          const next = { ...values, [key]: value };
          const problem = prefixProblem({
            name,
            secure: next.secure === true,
            path: typeof next.path === 'string' ? next.path : '/',
            domain: typeof next.domain === 'string' ? next.domain : undefined,
          });
          if (problem) throw new TypeError(`req.session.cookie.${key}: ${problem}`);
          values[key] = value;
        },
      });
    }
  };
  const s = store as Store & { generate(req: { session?: object }): void };
  const generate = s.generate.bind(s);
  s.generate = (req) => {
    generate(req);
    guard(req.session as never);
  };
  const createSession = s.createSession.bind(s);
  s.createSession = ((req: never, data: never) => {
    const sess = createSession(req, data);
    guard(sess as never);
    return sess;
  }) as Store['createSession'];
}
