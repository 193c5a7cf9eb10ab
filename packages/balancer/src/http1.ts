/**
 * HTTP/1.1 heads on raw bytes, both directions, equally strict: a head is first checked whole against the
 * grammar (syntax.ts), then the fields the proxy acts on are read. Anything ambiguous in a request is a 4xx; in a
 * response, a 502. What goes on is re-written, not passed through: the start line, Host, the framing header
 * (framing.ts) and Connection are the balancer's own; other fields are forwarded as the validated lines they were.
 */
import { METHODS } from 'node:http';
import { BODY_NONE, requestFraming, responseFraming, type Framing } from './framing.ts';
import { isToken, listElements, listHas, REQUEST_HEAD, RESPONSE_HEAD, trimOws } from './syntax.ts';
import { parseTarget, validHost } from './target.ts';

export interface RequestHead {
  method: string;
  /** Origin-form (absolute-form is rewritten), or `*` for OPTIONS. */
  target: string;
  /** HTTP minor version: 1 keeps the connection open by default, 0 does not. */
  minor: number;
  /** Field lines to forward, each ending in CRLF: without Host, framing, hop-by-hop and X-Forwarded-* fields. */
  headers: string;
  /** Validated; from the target's authority for absolute-form. '' only for HTTP/1.0 without Host. */
  host: string;
  framing: Framing;
  keepAlive: boolean;
  /** 'websocket' for a WebSocket handshake, the only upgrade tunnelled; '' otherwise. */
  upgrade: string;
  cookie: string;
  forwardedFor: string;
  forwardedProto: string;
  forwardedHost: string;
  /** The client's X-Request-Id ('' when none): kept only from a trusted proxy (forward.ts). */
  requestId: string;
}

/** A parse failure: the status to answer with and a one-line reason for the client. */
interface HeadError {
  status: number;
  reason: string;
}

function bad(reason: string, status = 400): HeadError {
  return { status, reason };
}

/**
 * Methods forwarded: those Node's parser (the instances') accepts. CONNECT and TRACE are refused with 405, as
 * nginx does; an unknown method is 501, a known one in lower case 400 (method names are case-sensitive).
 */
const FORWARDED_METHODS = new Set(METHODS.filter((m) => m !== 'CONNECT' && m !== 'TRACE'));

function methodError(method: string): HeadError | undefined {
  if (FORWARDED_METHODS.has(method)) return undefined;
  if (method === 'CONNECT' || method === 'TRACE') return bad(`${method} is not supported`, 405);
  if (FORWARDED_METHODS.has(method.toUpperCase())) return bad('method names are case-sensitive');
  return bad('method not implemented', 501);
}

/** Parses a request head (latin1, through the CRLF of its last field line). `maxFields`: field lines allowed. */
export function parseRequestHead(head: string, maxFields: number): RequestHead | HeadError {
  if (!REQUEST_HEAD.test(head)) return diagnoseRequest(head);
  const eol = head.indexOf('\r\n');
  const sp1 = head.indexOf(' ');
  const sp2 = head.lastIndexOf(' ', eol);
  const method = head.slice(0, sp1);
  const minor = head.charCodeAt(eol - 1) - 48;
  const refused = methodError(method);
  if (refused) return refused;
  const target = parseTarget(method, head.slice(sp1 + 1, sp2));
  if (typeof target === 'string') return bad(target);

  // Kept lines are copied in runs: only a dropped line (Host, framing, hop-by-hop...) ends a run.
  let headers = '';
  let keptFrom = eol + 2;
  let host: string | undefined;
  let lengths: string[] | undefined;
  let codings: string[] | undefined;
  let connection = '';
  let upgrade = '';
  let cookie = '';
  let forwardedFor = '';
  let forwardedProto = '';
  let forwardedHost = '';
  let requestId = '';
  let fields = 0;
  let pos = eol + 2;
  while (pos < head.length) {
    if (++fields > maxFields) return bad(`more than ${maxFields} header fields`, 431);
    const colon = head.indexOf(':', pos); // the grammar holds: a name, then the colon, on every line
    const end = head.indexOf('\r\n', colon);
    const next = end + 2;
    const len = colon - pos;
    let drop = false;
    if (len === 4 || len === 6 || len === 2 || len === 7 || len === 10 || len === 12 || len === 14 || len === 15 || len === 16 || len === 17) {
      const name = head.slice(pos, colon).toLowerCase();
      drop = true;
      switch (name) {
        case 'host': {
          if (host !== undefined) return bad('more than one Host header');
          host = trimOws(head.slice(colon + 1, end));
          if (!validHost(host)) return bad('invalid Host header');
          break;
        }
        case 'cookie': {
          const value = trimOws(head.slice(colon + 1, end));
          cookie = cookie ? `${cookie}; ${value}` : value;
          drop = false;
          break;
        }
        case 'content-length':
          (lengths ??= []).push(head.slice(colon + 1, end));
          break;
        case 'transfer-encoding':
          (codings ??= []).push(head.slice(colon + 1, end));
          break;
        case 'connection':
          connection = connection ? `${connection},${head.slice(colon + 1, end)}` : head.slice(colon + 1, end);
          break;
        case 'upgrade':
          upgrade = upgrade ? `${upgrade},${head.slice(colon + 1, end)}` : head.slice(colon + 1, end);
          break;
        case 'x-forwarded-for': {
          const value = trimOws(head.slice(colon + 1, end));
          forwardedFor = forwardedFor ? `${forwardedFor}, ${value}` : value;
          break;
        }
        case 'x-forwarded-proto':
          forwardedProto ||= trimOws(head.slice(colon + 1, end));
          break;
        case 'x-forwarded-host':
          forwardedHost ||= trimOws(head.slice(colon + 1, end));
          break;
        case 'x-request-id':
          requestId ||= trimOws(head.slice(colon + 1, end));
          break;
        case 'te':
        case 'trailer':
        case 'keep-alive':
        case 'proxy-connection':
          break;
        default:
          drop = false;
      }
    }
    if (drop) {
      if (pos > keptFrom) headers += head.slice(keptFrom, pos);
      keptFrom = next;
    }
    pos = next;
  }
  if (keptFrom < head.length) headers += head.slice(keptFrom);

  if (host === undefined) {
    if (minor === 1) return bad('missing Host header');
    host = '';
  }
  if (target.authority) {
    // RFC 9112 3.2.2: the authority is the host. A Host naming another one is refused, as HAProxy does.
    if (host && host.toLowerCase() !== target.authority.toLowerCase()) return bad('Host differs from the authority of the request target');
    host = target.authority;
  }
  const framing = requestFraming(minor, lengths, codings);
  if ('status' in framing) return framing;

  let keepAlive = minor === 1;
  let connectionUpgrade = false;
  let named: string[] | undefined;
  for (const token of connection ? listElements(connection) : []) {
    const t = token.toLowerCase();
    if (t === 'close') keepAlive = false;
    else if (t === 'upgrade') connectionUpgrade = true;
    else if (t !== 'keep-alive' && isToken(t)) (named ??= []).push(t);
  }
  // Fields the client named in Connection are hop-by-hop too (RFC 9110 7.6.1). Host and framing cannot be
  // among them: the balancer writes those itself.
  if (named) for (const t of named) headers = dropField(headers, t);
  // Only WebSocket handshakes (RFC 6455 4.1: GET, HTTP/1.1, no body) are tunnelled; another Upgrade (h2c...) is
  // ignored and the request served as plain HTTP/1.1, as RFC 9110 7.8 allows.
  const websocket = connectionUpgrade && minor === 1 && method === 'GET' && framing.kind === BODY_NONE && listHas(upgrade, 'websocket');
  return {
    method,
    target: target.path,
    minor,
    headers,
    host,
    framing,
    keepAlive,
    upgrade: websocket ? 'websocket' : '',
    cookie,
    forwardedFor,
    forwardedProto,
    forwardedHost,
    requestId,
  };
}

/** The precise reason a request head failed the grammar (the slow path: only for heads being refused). */
function diagnoseRequest(head: string): HeadError {
  const lines = head.split('\r\n');
  const line = lines[0]!;
  const parts = line.split(' ');
  if (parts.length !== 3 || !parts[0] || !parts[1]) return bad('malformed request line');
  const [method, target, version] = parts as [string, string, string];
  if (!isToken(method)) return bad('malformed method');
  if (!/^[\x21-\x7e]+$/.test(target)) return bad('malformed request target');
  if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0') {
    return bad(`unsupported protocol version ${version.slice(0, 16)}`, /^HTTP\/[0-9]\.[0-9]$/.test(version) ? 505 : 400);
  }
  for (let i = 1; i < lines.length - 1; i++) {
    const reason = fieldLineError(lines[i]!);
    if (reason) return bad(reason);
  }
  return bad('malformed header line');
}

/** What is wrong with one field line ('' when nothing is). */
function fieldLineError(line: string): string {
  const first = line.charCodeAt(0);
  if (first === 32 || first === 9) return 'obsolete line folding';
  const colon = line.indexOf(':');
  if (colon === -1) return 'header line without a colon';
  const name = line.slice(0, colon);
  const last = name.charCodeAt(name.length - 1);
  if (last === 32 || last === 9) return 'whitespace before the colon of a header';
  if (!isToken(name)) return 'malformed header name';
  if (!/^[\t\x20-\x7e\x80-\xff]*$/.test(line.slice(colon + 1))) return 'invalid character in header value';
  return '';
}

function dropField(headers: string, lowerName: string): string {
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
  /** Status line and kept field lines (each ending in CRLF), then the framing header; no final empty line. */
  head: string;
  framing: Framing;
  /** The instance will close after this response (Connection: close, HTTP/1.0 without keep-alive). */
  close: boolean;
  /** The connection must not carry another exchange (the framing needed repair: CL with TE). */
  noReuse: boolean;
  /** `Keep-Alive: timeout=N` from the instance, in ms; 0 when not given. */
  keepAliveMs: number;
  /** The Upgrade field of a 101, lower-cased. */
  upgrade: string;
}

const KEEP_ALIVE_TIMEOUT = /(?:^|,)[ \t]*timeout[ \t]*=[ \t]*([0-9]{1,6})/i;

/**
 * Parses an instance's response head (as parseRequestHead's input). `noBody`: the request was HEAD. Returns the
 * reason for a 502 when the head is not valid HTTP/1.1 or its framing is ambiguous.
 */
export function parseResponseHead(head: string, noBody: boolean): ResponseHead | string {
  if (!RESPONSE_HEAD.test(head)) return diagnoseResponse(head);
  const eol = head.indexOf('\r\n');
  const minor = head.charCodeAt(7) - 48;
  const status = Number(head.slice(9, 12));
  if (status < 200 && minor === 0) return 'interim answer in HTTP/1.0'; // 1xx does not exist in HTTP/1.0
  // Kept bytes are copied in runs: only a dropped line (framing, Connection, Keep-Alive...) ends a run.
  let out = minor === 1 ? '' : `HTTP/1.1${head.slice(8, eol)}\r\n`;
  let keptFrom = minor === 1 ? 0 : eol + 2;
  let lengths: string[] | undefined;
  let codings: string[] | undefined;
  let connection: string | undefined;
  let upgrade = '';
  let keepAliveMs = 0;
  let pos = eol + 2;
  while (pos < head.length) {
    const colon = head.indexOf(':', pos);
    const end = head.indexOf('\r\n', colon);
    const len = colon - pos;
    const first = head.charCodeAt(pos) | 0x20; // lower-cased first letter: a cheap filter before slicing
    if (
      ((len === 10 || len === 14) && (first === 99 /* c */ || first === 107 /* k */)) ||
      (len === 7 && (first === 116 /* t */ || first === 117 /* u */)) ||
      (len === 16 && first === 112 /* p */) ||
      (len === 17 && first === 116)
    ) {
      const name = head.slice(pos, colon).toLowerCase();
      let drop = true;
      if (name === 'content-length') (lengths ??= []).push(head.slice(colon + 1, end));
      else if (name === 'transfer-encoding') (codings ??= []).push(head.slice(colon + 1, end));
      else if (name === 'connection') connection = connection === undefined ? head.slice(colon + 1, end) : `${connection},${head.slice(colon + 1, end)}`;
      else if (name === 'keep-alive') {
        const m = KEEP_ALIVE_TIMEOUT.exec(head.slice(colon + 1, end));
        if (m) keepAliveMs = Number(m[1]) * 1000;
      } else if (name === 'upgrade') {
        upgrade = trimOws(head.slice(colon + 1, end)).toLowerCase();
        drop = false;
      } else if (name !== 'proxy-connection' && name !== 'trailer') drop = false; // trailers are never forwarded
      if (drop) {
        out += head.slice(keptFrom, pos);
        keptFrom = end + 2;
      }
    }
    pos = end + 2;
  }
  if (keptFrom < head.length) out += head.slice(keptFrom);
  const framing = responseFraming(minor, status, noBody || status === 304, lengths, codings);
  if (typeof framing === 'string') return framing;

  let close = minor === 0;
  // Node instances send `Connection: keep-alive` on every answer: no list to split then.
  if (connection !== undefined && !(minor === 1 && trimOws(connection).toLowerCase() === 'keep-alive')) {
    for (const token of listElements(connection)) {
      const t = token.toLowerCase();
      if (t === 'close') close = true;
      else if (t === 'keep-alive') {
        if (minor === 0 && !listHas(connection, 'close')) close = false;
      } else if (t !== 'upgrade' && isToken(t)) out = dropField(out, t); // named fields are hop-by-hop (RFC 9110 7.6.1)
    }
  }
  return { status, head: out + framing.header, framing, close, noReuse: lengths !== undefined && codings !== undefined, keepAliveMs, upgrade };
}

function diagnoseResponse(head: string): string {
  const lines = head.split('\r\n');
  if (!/^HTTP\/1\.[01] [1-9][0-9]{2}(?: [\t\x20-\x7e\x80-\xff]*)?$/.test(lines[0]!)) return 'invalid status line';
  for (let i = 1; i < lines.length - 1; i++) {
    const reason = fieldLineError(lines[i]!);
    if (reason) return `${reason} in the response`;
  }
  return 'malformed response head';
}
