import { randomUUID } from 'node:crypto';
import { readCookie, stripCookie } from './cookie.ts';
import type { RequestHead } from './http1.ts';
import type { BalancerConfig } from './options.ts';
import { trimOws } from './syntax.ts';

/** Methods whose repetition has the same effect as one request (RFC 9110 9.2.2): the only ones ever resent. */
export const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** A request id worth keeping from a trusted proxy: printable, no spaces, short (a UUID, a trace id...). */
const REQUEST_ID = /^[A-Za-z0-9._:@=+/-]{1,128}$/;

/**
 * The head sent to the instance: the client's headers minus hop-by-hop ones (removed while parsing) and minus the
 * sticky cookie (HAProxy's `indirect`), plus X-Forwarded-*, X-Request-Id and the balancer's own framing and
 * Connection. The request id is the one a trusted proxy sent (when it looks like an id), else a new UUID: a
 * client cannot choose the id that names its request in the logs. `traceparent` is forwarded as it came.
 */
export function forwardHead(req: RequestHead, ip: string, config: BalancerConfig): { head: string; sticky: string; requestId: string } {
  let headers = req.headers;
  let sticky = '';
  if (config.strategy === 'cookie' && req.cookie) {
    sticky = readCookie(req.cookie, config.cookie.name);
    if (sticky) headers = stripCookie(headers, config.cookie.name);
  }
  const trust = trusts(config, ip);
  const forwardedFor = trust && req.forwardedFor ? `${req.forwardedFor}, ${ip}` : ip;
  // Where TLS ends here, this hop is https whatever a client claims: the instance's Secure cookies then work.
  const proto = config.tls ? 'https' : (trust && req.forwardedProto) || 'http';
  const host = (trust && req.forwardedHost) || req.host;
  // HTTP/1.0 clients cannot read chunked answers: ask the instance in 1.0 too, it then frames by length or close.
  // Start line, Host, framing and Connection are written here from validated values, never copied from the client.
  let head = `${req.method} ${req.target} HTTP/1.${req.minor}\r\n`;
  if (req.host) head += `Host: ${req.host}\r\n`;
  head += `${headers}X-Forwarded-For: ${forwardedFor}\r\nX-Forwarded-Proto: ${proto}\r\n`;
  if (host) head += `X-Forwarded-Host: ${host}\r\n`;
  let requestId = req.requestId;
  if (config.requestId) requestId = config.trustProxy && REQUEST_ID.test(requestId) ? requestId : randomUUID();
  if (requestId) head += `X-Request-Id: ${requestId}\r\n`;
  head += req.framing.header;
  head += req.upgrade ? `Connection: upgrade\r\nUpgrade: ${req.upgrade}\r\n\r\n` : 'Connection: keep-alive\r\n\r\n';
  return { head, sticky, requestId };
}

/** Whether the X-Forwarded-* of this peer are believed: trustProxy (every peer), or a peer in trustedProxies. */
export function trusts(config: BalancerConfig, ip: string): boolean {
  return config.trustProxy || (config.trustedProxies !== undefined && config.trustedProxies.check(ip, ip.includes(':') ? 'ipv6' : 'ipv4'));
}

/**
 * The client's address as far as it can be believed: the peer, or behind trusted proxies the right-most
 * X-Forwarded-For entry that is not itself a trusted proxy (entries further left were written by the client).
 */
export function clientAddress(req: RequestHead, ip: string, config: BalancerConfig): string {
  if (!req.forwardedFor || !trusts(config, ip)) return ip;
  const entries = req.forwardedFor.split(',');
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = trimOws(entries[i]!);
    if (entry === '') return ip;
    // trustProxy believes one hop (the peer's); trustedProxies walk left while the entry is one of them.
    if (config.trustProxy || i === 0 || !trusts(config, entry)) return entry;
  }
  return ip;
}

/** ip-hash key: the client address, or behind a trusted proxy the address that proxy saw. */
export function hashKey(req: RequestHead, ip: string, config: BalancerConfig): string {
  if (config.strategy !== 'ip-hash') return '';
  return clientAddress(req, ip, config);
}
