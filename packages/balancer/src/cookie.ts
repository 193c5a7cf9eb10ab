import { trimOws } from './syntax.ts';

/** The value of cookie `name` in a Cookie header, or ''. */
export function readCookie(header: string, name: string): string {
  let pos = 0;
  while (pos < header.length) {
    let end = header.indexOf(';', pos);
    if (end === -1) end = header.length;
    const eq = header.indexOf('=', pos);
    if (eq !== -1 && eq < end && trimOws(header.slice(pos, eq)) === name) return trimOws(header.slice(eq + 1, end));
    pos = end + 1;
  }
  return '';
}

/**
 * Header lines with cookie `name` taken out of every Cookie line (HAProxy's `indirect`: the instance never sees
 * the balancer's cookie). A Cookie line left empty is dropped.
 */
export function stripCookie(headers: string, name: string): string {
  let out = '';
  let pos = 0;
  while (pos < headers.length) {
    const end = headers.indexOf('\r\n', pos) + 2;
    const colon = headers.indexOf(':', pos);
    if (colon - pos === 6 && headers.slice(pos, colon).toLowerCase() === 'cookie') {
      const kept = headers
        .slice(colon + 1, end - 2)
        .split(';')
        .filter((pair) => {
          const eq = pair.indexOf('=');
          return trimOws(pair) !== '' && trimOws(eq === -1 ? pair : pair.slice(0, eq)) !== name;
        })
        .map(trimOws);
      if (kept.length) out += `${headers.slice(pos, colon)}: ${kept.join('; ')}\r\n`;
    } else out += headers.slice(pos, end);
    pos = end;
  }
  return out;
}

/** Set-Cookie for the sticky cookie, plus HAProxy's `nocache`: a response that pins a client must not be cached. */
export function stickyHeaders(name: string, id: string, secure: boolean): string {
  return `Set-Cookie: ${name}=${id}; Path=/; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}\r\nCache-Control: private\r\n`;
}
