/**
 * The HTTP/1.1 wire pieces the proxy needs, on raw bytes: head parsing for requests (strict: anything ambiguous
 * is a 400, which is what keeps request smuggling out) and responses (tolerant: instances are ours), and a chunked
 * framing tracker that finds where a message ends without copying or decoding its body.
 */

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const TARGET = /^[\x21-\x7e\x80-\xff]+$/;
const DIGITS = /^\d{1,15}$/;

export interface RequestHead {
  method: string;
  target: string;
  /** HTTP minor version: 1 keeps the connection open by default, 0 does not. */
  minor: number;
  /** Header lines to forward, each ending in CRLF: hop-by-hop, X-Forwarded-* (unless trusted) and framing removed. */
  headers: string;
  host: string;
  /** -1 when there is no Content-Length. */
  contentLength: number;
  chunked: boolean;
  keepAlive: boolean;
  /** Lower-cased Upgrade protocol when the client asks to switch (WebSocket). */
  upgrade: string;
  cookie: string;
  forwardedFor: string;
  forwardedProto: string;
  forwardedHost: string;
}

/** A parse failure: the status to answer with and a one-line reason for the client. */
export interface HeadError {
  status: number;
  reason: string;
}

function bad(reason: string, status = 400): HeadError {
  return { status, reason };
}

/** Parses `head` (latin1-decoded, up to and including the CRLF that ends the last header line). Returns the head or the error to answer with. */
export function parseRequestHead(head: string): RequestHead | HeadError {
  let eol = head.indexOf('\r\n');
  if (eol === -1) eol = head.length;
  const line = head.slice(0, eol);
  const sp1 = line.indexOf(' ');
  const sp2 = line.lastIndexOf(' ');
  if (sp1 <= 0 || sp2 === sp1) return bad('malformed request line');
  const method = line.slice(0, sp1);
  const target = line.slice(sp1 + 1, sp2);
  const version = line.slice(sp2 + 1);
  if (!TOKEN.test(method)) return bad('malformed method');
  if (!TARGET.test(target)) return bad('malformed request target');
  let minor: number;
  if (version === 'HTTP/1.1') minor = 1;
  else if (version === 'HTTP/1.0') minor = 0;
  else return bad(`unsupported protocol version ${version.slice(0, 16)}`, version.startsWith('HTTP/') ? 505 : 400);
  if (method === 'CONNECT') return bad('CONNECT is not supported', 405);
  if (target.charCodeAt(0) !== 47 /* / */ && target !== '*' && !/^https?:\/\//i.test(target)) return bad('malformed request target');

  let headers = '';
  let host: string | undefined;
  let contentLength = -1;
  let transferEncoding: string | undefined;
  let connection = '';
  let upgrade = '';
  let cookie = '';
  let forwardedFor = '';
  let forwardedProto = '';
  let forwardedHost = '';
  let pos = eol + 2;
  while (pos < head.length) {
    let end = head.indexOf('\r\n', pos);
    if (end === -1) end = head.length;
    const colon = head.indexOf(':', pos);
    if (colon <= pos || colon > end) return bad('malformed header line');
    const name = head.slice(pos, colon);
    // Optional whitespace around the value is space or tab only (RFC 9110 5.6.3), not what trim() removes.
    let from = colon + 1;
    let to = end;
    while (from < to && (head.charCodeAt(from) === 32 || head.charCodeAt(from) === 9)) from++;
    while (to > from && (head.charCodeAt(to - 1) === 32 || head.charCodeAt(to - 1) === 9)) to--;
    const value = head.slice(from, to);
    const raw = head.slice(pos, end + 2);
    pos = end + 2;
    if (!TOKEN.test(name)) return bad('malformed header name');
    if (!VALUE.test(value)) return bad('invalid character in header value');
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === 'host') {
          if (host !== undefined) return bad('more than one Host header');
          host = value;
        }
        break;
      case 6:
        if (name.toLowerCase() === 'cookie') cookie = cookie ? `${cookie}; ${value}` : value;
        break;
      case 2:
        if (name.toLowerCase() === 'te') continue;
        break;
      case 7: {
        const lower = name.toLowerCase();
        if (lower === 'upgrade') {
          upgrade = value.toLowerCase();
          continue;
        }
        if (lower === 'trailer') continue;
        break;
      }
      case 10: {
        const lower = name.toLowerCase();
        if (lower === 'connection') {
          connection = connection ? `${connection},${value.toLowerCase()}` : value.toLowerCase();
          continue;
        }
        if (lower === 'keep-alive') continue;
        break;
      }
      case 14:
        if (name.toLowerCase() === 'content-length') {
          if (!DIGITS.test(value)) return bad('invalid Content-Length');
          const n = Number(value);
          if (contentLength !== -1 && contentLength !== n) return bad('conflicting Content-Length headers');
          contentLength = n;
          continue;
        }
        break;
      case 15:
        if (name.toLowerCase() === 'x-forwarded-for') {
          forwardedFor = forwardedFor ? `${forwardedFor}, ${value}` : value;
          continue;
        }
        break;
      case 16: {
        const lower = name.toLowerCase();
        if (lower === 'proxy-connection') continue;
        if (lower === 'x-forwarded-host') {
          forwardedHost ||= value;
          continue;
        }
        break;
      }
      case 17: {
        const lower = name.toLowerCase();
        if (lower === 'transfer-encoding') {
          transferEncoding = transferEncoding ? `${transferEncoding},${value.toLowerCase()}` : value.toLowerCase();
          continue;
        }
        if (lower === 'x-forwarded-proto') {
          forwardedProto ||= value;
          continue;
        }
        break;
      }
    }
    headers += raw;
  }
  if (host === undefined) {
    if (minor === 1) return bad('missing Host header');
    host = '';
  }
  let chunked = false;
  if (transferEncoding !== undefined) {
    // Both framings at once is the classic smuggling vector (RFC 9112 6.3): refuse rather than guess.
    if (contentLength !== -1) return bad('both Transfer-Encoding and Content-Length');
    if (transferEncoding.replace(/\s+/g, '') !== 'chunked') return bad(`unsupported Transfer-Encoding`, 501);
    if (minor === 0) return bad('Transfer-Encoding in an HTTP/1.0 request');
    chunked = true;
  }
  // Headers named in Connection are hop-by-hop too (RFC 9110 7.6.1).
  let keepAlive = minor === 1;
  if (connection) {
    for (const token of connection.split(',')) {
      const t = token.trim();
      if (t === 'close') keepAlive = false;
      else if (t && t !== 'upgrade' && TOKEN.test(t)) headers = dropHeader(headers, t);
    }
  }
  if (upgrade && !/(^|,)\s*upgrade\s*(,|$)/.test(connection)) upgrade = '';
  return { method, target, minor, headers, host, contentLength, chunked, keepAlive, upgrade, cookie, forwardedFor, forwardedProto, forwardedHost };
}

function dropHeader(headers: string, lowerName: string): string {
  let out = '';
  let pos = 0;
  while (pos < headers.length) {
    const end = headers.indexOf('\r\n', pos) + 2;
    const colon = headers.indexOf(':', pos);
    if (headers.slice(pos, colon).toLowerCase() !== lowerName) out += headers.slice(pos, end);
    pos = end;
  }
  return out;
}

export interface ResponseHead {
  status: number;
  /** Status line and kept header lines (each ending in CRLF), without the final empty line. */
  head: string;
  contentLength: number;
  chunked: boolean;
  /** The instance will close after this response (Connection: close or HTTP/1.0 without keep-alive). */
  close: boolean;
  /** `Keep-Alive: timeout=N` from the instance, in ms; 0 when not given. */
  keepAliveMs: number;
}

/** Tolerant parse of an instance's response head (same framing as parseRequestHead's input); undefined when it is not HTTP at all (answered with 502). */
export function parseResponseHead(head: string): ResponseHead | undefined {
  let eol = head.indexOf('\r\n');
  if (eol === -1) eol = head.length;
  if (!head.startsWith('HTTP/1.')) return undefined;
  const minor = head.charCodeAt(7) - 48;
  const status = Number(head.slice(9, 12));
  if (head.charCodeAt(8) !== 32 || (eol !== 12 && head.charCodeAt(12) !== 32)) return undefined;
  if (!(status >= 100 && status <= 999) || (minor !== 0 && minor !== 1)) return undefined;
  // Kept bytes are copied in runs: only a dropped line (Connection, Keep-Alive...) ends a run.
  let out = minor === 1 ? '' : `HTTP/1.1${head.slice(8, eol)}\r\n`;
  let keptFrom = minor === 1 ? 0 : eol + 2;
  let contentLength = -1;
  let chunked = false;
  let close = minor === 0;
  let keepAliveMs = 0;
  let named: string[] | undefined;
  let pos = eol + 2;
  while (pos < head.length) {
    let end = head.indexOf('\r\n', pos);
    if (end === -1) end = head.length;
    const colon = head.indexOf(':', pos);
    if (colon <= pos || colon > end) return undefined;
    const nameLength = colon - pos;
    const first = head.charCodeAt(pos) | 0x20; // lower-cased first letter: a cheap filter before slicing
    if (
      ((nameLength === 10 || nameLength === 14) && (first === 99 /* c */ || first === 107 /* k */)) ||
      (nameLength === 16 && first === 112 /* p */) ||
      (nameLength === 17 && first === 116 /* t */)
    ) {
      const name = head.slice(pos, colon).toLowerCase();
      let drop = false;
      if (name === 'connection') {
        drop = true;
        const value = head.slice(colon + 1, end).trim().toLowerCase();
        if (value !== 'keep-alive') {
          if (/(^|,)\s*close\s*(,|$)/.test(value)) close = true;
          else if (minor === 0 && /(^|,)\s*keep-alive\s*(,|$)/.test(value)) close = false;
          for (const token of value.split(',')) {
            const t = token.trim();
            if (t && t !== 'close' && t !== 'keep-alive' && t !== 'upgrade') (named ??= []).push(t);
          }
        } else if (minor === 0) close = false;
      } else if (name === 'keep-alive' || name === 'proxy-connection') {
        drop = true;
        const m = name === 'keep-alive' ? /(?:^|,)\s*timeout=(\d{1,6})/i.exec(head.slice(colon + 1, end)) : null;
        if (m) keepAliveMs = Number(m[1]) * 1000;
      } else if (name === 'content-length') {
        const value = head.slice(colon + 1, end).trim();
        if (!DIGITS.test(value)) return undefined;
        contentLength = Number(value);
      } else if (name === 'transfer-encoding') {
        if (head.slice(colon + 1, end).trim().toLowerCase().endsWith('chunked')) chunked = true;
        else close = true;
      }
      if (drop) {
        out += head.slice(keptFrom, pos);
        keptFrom = end + 2;
      }
    }
    pos = end + 2;
  }
  if (keptFrom < head.length) out += head.slice(keptFrom);
  if (chunked) contentLength = -1;
  // Headers the instance named in Connection are hop-by-hop for this answer (RFC 9110 7.6.1).
  if (named) for (const t of named) out = dropHeader(out, t);
  return { status, head: out, contentLength, chunked, close, keepAliveMs };
}
