/**
 * The sign-in form's one-time message after a failed POST /login (post-redirect-get): a short-lived cookie, read
 * and cleared by the next GET /. Only a message code and the username travel (never the password), and no
 * session is created for a visitor who is not signed in, so failed attempts write nothing to the store.
 */
import type { Request, Response } from 'express';
import type { LoginForm } from './views.ts';

const COOKIE = 'login_error';
const MESSAGES = {
  wrong: 'Wrong username or password.',
  missing: 'Enter a username and a password.',
  throttled: 'Too many failed sign-ins. Wait a little and try again.',
} as const;
type Kind = keyof typeof MESSAGES;

export function setLoginFlash(req: Request, res: Response, kind: Kind, username: string): Response {
  return res.cookie(COOKIE, `${kind}:${username.slice(0, 256)}`, { httpOnly: true, sameSite: 'lax', secure: req.secure, maxAge: 60_000, path: '/' });
}

export function readLoginFlash(req: Request): LoginForm | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name !== COOKIE) continue;
    let value: string;
    try {
      value = decodeURIComponent(rest.join('='));
    } catch {
      return undefined;
    }
    const at = value.indexOf(':');
    const kind = value.slice(0, at) as Kind;
    if (at === -1 || !Object.hasOwn(MESSAGES, kind)) return undefined;
    return { error: MESSAGES[kind], username: value.slice(at + 1, at + 257) };
  }
  return undefined;
}

export function clearLoginFlash(res: Response): void {
  res.clearCookie(COOKIE, { path: '/' });
}
