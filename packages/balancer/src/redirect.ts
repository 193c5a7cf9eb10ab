import http from 'node:http';
import { sendAnswer } from '@cluster-session/core';
import { BadRequestError } from './errors.ts';
import { hostOf, type Certificates } from './tls.ts';

/**
 * The plain-HTTP listener of a TLS balancer: every request gets a 308 to the same host and path over HTTPS (308,
 * not 301: the method and body are kept). Not the hot path, so node:http parses here. The Host is checked against
 * the certificates' names: a redirect only ever points at a name this balancer serves, so a forged Host cannot
 * turn it into an open redirect (or poison a cache with one).
 */
export function createRedirectServer(certs: Certificates, httpsPort: () => number): http.Server {
  const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 10_000, maxHeaderSize: 16_384 }, (req, res) => {
    const host = hostOf(req.headers.host);
    const target = req.url ?? '';
    let reason = '';
    if (host === undefined) reason = 'a valid Host header is required';
    else if (!certs.covers(host)) reason = 'this Host is not served here';
    else if (!target.startsWith('/')) reason = 'the request target must be a path';
    if (reason !== '') {
      sendAnswer(res, { status: BadRequestError.status, code: BadRequestError.code, error: reason });
      return;
    }
    const port = httpsPort();
    const authority = host!.includes(':') ? `[${host}]` : host!;
    res.writeHead(308, {
      location: `https://${authority}${port === 443 ? '' : `:${port}`}${target}`,
      'content-length': '0',
      'cache-control': 'no-store',
    });
    res.end();
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  return server;
}
