import type { ServerResponse } from 'node:http';
import type { Answerable } from './errors.ts';

/**
 * The one JSON error answer of the suite, written by every package and mode that answers a request itself:
 * `{ "error": <text for the client>, "code": "CS_ERR_..." }`, plus `limit` on a 413; `Cache-Control: no-store`
 * always, `Retry-After` on a 503 and a 429. Never a stack trace, a store address or a secret.
 */
export interface ErrorAnswer {
  status: number;
  code: string;
  /** The text a client sees. */
  error: string;
  limit?: number;
  /** Seconds; sent on a 503 and a 429 (default 1). */
  retryAfter?: number;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Content Too Large',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};

export function answerFrom(err: Answerable): ErrorAnswer {
  return {
    status: err.status,
    code: err.code,
    error: err.publicMessage,
    ...(err.limit !== undefined ? { limit: err.limit } : {}),
    ...(err.retryAfter !== undefined ? { retryAfter: err.retryAfter } : {}),
  };
}

/** The body and headers of an answer (header names lower-case). */
export function renderAnswer(a: ErrorAnswer): { body: string; headers: Array<[string, string]> } {
  const body = JSON.stringify({ error: a.error, code: a.code, ...(a.status === 413 && a.limit !== undefined ? { limit: a.limit } : {}) });
  const headers: Array<[string, string]> = [
    ['content-type', 'application/json; charset=utf-8'],
    ['cache-control', 'no-store'],
  ];
  if (a.status === 503 || a.status === 429) headers.push(['retry-after', String(Math.max(1, Math.ceil(a.retryAfter ?? 1)))]);
  return { body, headers };
}

export interface SendOptions {
  /** Drop the headers the app had set first, when the answer replaces a half-built one (it must not leak a cookie). */
  replace?: boolean;
  /** Writes the body; default res.end (a caller that wrapped res.end passes the original). */
  end?: (body: string) => void;
}

/** Answers `res` with `a`. When the headers already went out nothing truthful can be sent: the connection is closed. */
export function sendAnswer(res: ServerResponse, a: ErrorAnswer, options: SendOptions = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (options.replace) for (const name of res.getHeaderNames()) res.removeHeader(name);
  const { body, headers } = renderAnswer(a);
  res.statusCode = a.status;
  for (const [name, value] of headers) res.setHeader(name, value);
  if (options.end) options.end(body);
  else res.end(body);
}

/**
 * The same answer as raw HTTP/1.1 bytes, for code that writes to a socket itself (the balancer, the sticky
 * router). An answer to HEAD carries the length but no body, or the client would read the body as the next answer.
 */
export function rawAnswer(a: ErrorAnswer, options: { close?: boolean; head?: boolean } = {}): string {
  const { body, headers } = renderAnswer(a);
  let text = `HTTP/1.1 ${a.status} ${STATUS_TEXT[a.status] ?? 'Error'}\r\n`;
  for (const [name, value] of headers) text += `${name}: ${value}\r\n`;
  text += `content-length: ${Buffer.byteLength(body)}\r\n`;
  if (options.close) text += 'connection: close\r\n';
  return `${text}\r\n${options.head ? '' : body}`;
}
