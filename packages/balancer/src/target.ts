/**
 * Request targets and Host values (RFC 9112 3.2, RFC 3986 3.2.2). Instances only ever see origin-form targets and
 * a Host the balancer validated: an absolute-form target is rewritten to origin-form with Host taken from its
 * authority (RFC 9112 3.2.2), so no application that builds URLs from `req.url` or `Host` sees two different hosts.
 */

/**
 * A Host value: a DNS-style name (letters, digits, `-._~`), an IPv4 address or a bracketed IPv6 literal, and an
 * optional port. Stricter than RFC 3986's reg-name (no sub-delims, no percent-encoding), as nginx is: lists
 * (`a, b`), spaces, `/`, `@` and empty values are refused.
 */
const HOST = /^(?:[A-Za-z0-9._~-]{1,255}|\[[0-9A-Fa-f:.]{2,63}\])(?::[0-9]{0,5})?$/;

export function validHost(host: string): boolean {
  return HOST.test(host);
}

/** The origin-form target to forward and, for an absolute-form target, the authority that becomes Host. */
interface Target {
  path: string;
  /** '' unless the request line carried an absolute-form target. */
  authority: string;
}

/**
 * Classifies a request-target (its characters were checked by the head grammar: 0x21-0x7E).
 * Returns the reason for a 400 instead when it is neither origin-form, absolute-form nor `OPTIONS *`.
 */
export function parseTarget(method: string, target: string): Target | string {
  const first = target.charCodeAt(0);
  if (first === 47 /* / */) {
    // A fragment is never sent (RFC 9110 4.2.5); one in a target is an attempt to confuse a parser.
    if (target.includes('#')) return 'fragment in the request target';
    return { path: target, authority: '' };
  }
  if (target === '*') return method === 'OPTIONS' ? { path: '*', authority: '' } : 'asterisk target is only for OPTIONS';
  const scheme = first === 104 || first === 72 ? schemeLength(target) : 0;
  if (scheme === 0) return 'malformed request target';
  let end = scheme;
  while (end < target.length) {
    const c = target.charCodeAt(end);
    if (c === 47 || c === 63 /* ? */) break;
    end++;
  }
  const authority = target.slice(scheme, end);
  if (authority.includes('@')) return 'userinfo in the request target';
  if (!validHost(authority)) return 'invalid authority in the request target';
  if (target.includes('#', end)) return 'fragment in the request target';
  const rest = target.slice(end);
  return { path: rest === '' ? '/' : rest.charCodeAt(0) === 63 ? `/${rest}` : rest, authority };
}

/** Length of a leading `http://` or `https://` (any case), 0 when there is none. */
function schemeLength(target: string): number {
  const lower = target.slice(0, 8).toLowerCase();
  if (lower.startsWith('http://')) return 7;
  if (lower.startsWith('https://')) return 8;
  return 0;
}
