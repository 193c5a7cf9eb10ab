/**
 * The edge features of exportConfig (TLS, redirect, HSTS, rate limit, compression, static-asset cache) as nginx and
 * HAProxy directives, kept apart from the routing part in export.ts. Every piece is checked by the real binaries
 * (test/export.test.ts).
 */
import { hostPort } from './address.ts';
import type { BalancerConfig } from './options.ts';
import { certificateNames } from './tls.ts';

/** What only an export has: the bundled balancer does not cache. */
export interface ExportExtras {
  /** Cache static assets (by extension) for as long as their Cache-Control allows. */
  cache: boolean;
}

/** Types worth compressing (nginx gzip_types / HAProxy compression type; the bundled balancer's list in compress.ts). */
const COMPRESSIBLE = 'text/html text/plain text/css text/javascript application/javascript application/json application/xml image/svg+xml';
const STATIC = 'css|js|mjs|map|png|jpe?g|gif|svg|ico|webp|avif|woff2?|ttf|otf';
const STATIC_SUFFIXES = STATIC.replace('jpe?g', 'jpg|jpeg').replace('woff2?', 'woff|woff2').split('|').map((e) => `.${e}`).join(' ');


interface Site {
  cert: string;
  key: string;
  names: string[];
}

function sites(c: BalancerConfig): Site[] {
  if (!c.tls) return [];
  return c.tls.certs.map((p, i) => ({ cert: p.cert, key: p.key, names: certificateNames(p.cert, i, 'exportConfig') }));
}

/** nginx rate: integers only, per second or per minute. */
function nginxRate(perMs: number): string {
  const perSecond = perMs * 1000;
  return Number.isInteger(perSecond) ? `${perSecond}r/s` : `${Math.max(1, Math.round(perSecond * 60))}r/m`;
}

/** http{}-level lines: the rate-limit zone, real client addresses from trusted proxies, gzip, the cache zone. */
export function nginxHttp(c: BalancerConfig, x: ExportExtras, trusted: readonly string[]): string {
  const out: string[] = [];
  if (trusted.length > 0) {
    out.push('    # trustedProxies: X-Forwarded-For is believed from these peers only ($remote_addr becomes the client)');
    for (const t of trusted) out.push(`    set_real_ip_from ${t};`);
    out.push('    real_ip_header X-Forwarded-For;', '    real_ip_recursive on;');
  }
  if (c.rateLimit) {
    out.push(
      `    # rateLimit: ${nginxRate(c.rateLimit.perMs)} per client address, burst ${c.rateLimit.burst} (a token bucket, as limit_req's leaky bucket with nodelay)`,
      `    limit_req_zone $binary_remote_addr zone=cs_rate:10m rate=${nginxRate(c.rateLimit.perMs)};`,
      '    limit_req_status 429;',
    );
  }
  if (c.compress) {
    out.push(
      '    # compress: gzip of compressible answers the instance sent uncompressed (brotli needs a third-party module)',
      '    gzip on;',
      '    gzip_proxied any;',
      '    gzip_vary on;',
      '    gzip_min_length 1024;',
      `    gzip_types ${COMPRESSIBLE.replace('text/html ', '')};`,
    );
  }
  if (x.cache) {
    out.push(
      '    # cache: static assets, for as long as the instance\'s Cache-Control / Expires allow (answers with Set-Cookie are never stored)',
      '    proxy_cache_path cache levels=1:2 keys_zone=cs_static:10m max_size=1g inactive=60m use_temp_path=off;',
    );
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/** server{}-level lines of the main server: the TLS listener or the plain one, HSTS, the rate limit. */
export function nginxServer(c: BalancerConfig, listen: string): string {
  const out: string[] = [];
  const tls = sites(c);
  if (tls.length === 0) out.push(`        listen ${listen};`);
  else {
    out.push(
      `        listen ${listen} ssl;`,
      `        # TLS: the first certificate is the default; nginx picks another by SNI through the servers below`,
      `        ssl_certificate ${tls[0]!.cert};`,
      `        ssl_certificate_key ${tls[0]!.key};`,
      '        ssl_protocols TLSv1.2 TLSv1.3;',
      '        ssl_session_cache shared:cs_tls:10m;',
      '        ssl_session_timeout 1d;',
    );
    if (c.tls && c.tls.hsts > 0) out.push(`        add_header Strict-Transport-Security "max-age=${c.tls.hsts}" always;`);
  }
  if (c.rateLimit) {
    out.push(
      `        limit_req zone=cs_rate burst=${c.rateLimit.burst} nodelay;`,
      '        # 429 with Retry-After, as the bundled balancer answers',
      '        error_page 429 = @cs_too_many;',
      '        location @cs_too_many {',
      '            add_header Retry-After 1 always;',
      '            add_header Cache-Control no-store always;',
      '            default_type application/json;',
      '            return 429 \'{"error":"too many requests from this address","code":"CS_ERR_BALANCER_RATE_LIMITED"}\';',
      '        }',
    );
  }
  return `${out.join('\n')}\n`;
}

/** A location for static assets served from the cache (inside the server, next to `location /`). */
export function nginxStaticLocation(x: ExportExtras, proxied: string): string {
  if (!x.cache) return '';
  return `
        location ~* \\.(${STATIC})$ {
${proxied}            proxy_buffering on;
            proxy_cache cs_static;
            proxy_cache_key $scheme$host$request_uri;
            proxy_cache_use_stale error timeout updating;
            proxy_cache_lock on;
            add_header X-Cache-Status $upstream_cache_status always;
        }
`;
}

/** The other servers of a TLS setup: one per further certificate (SNI), and the plain listener that redirects. */
export function nginxExtraServers(c: BalancerConfig, listen: string, body: string): string {
  if (!c.tls) return '';
  const tls = sites(c);
  let out = '';
  for (const s of tls.slice(1)) {
    out += `
    server {
        listen ${listen} ssl;
        server_name ${s.names.join(' ')};
        ssl_certificate ${s.cert};
        ssl_certificate_key ${s.key};
        ssl_protocols TLSv1.2 TLSv1.3;
${c.tls.hsts > 0 ? `        add_header Strict-Transport-Security "max-age=${c.tls.hsts}" always;\n` : ''}${body}    }
`;
  }
  if (c.tls.redirect) {
    const r = c.tls.redirect;
    const port = listen.slice(listen.lastIndexOf(':') + 1);
    const names = [...new Set(tls.flatMap((s) => s.names))];
    out += `
    # tls.redirect: plain HTTP answers 308 to the same host and path over HTTPS, only for the certificates' names
    server {
        listen ${hostPort(r.host, r.port)} default_server;
        return 400;
    }
    server {
        listen ${hostPort(r.host, r.port)};
        server_name ${names.join(' ')};
        return 308 https://$host${port === '443' ? '' : `:${port}`}$request_uri;
    }
`;
  }
  return out;
}

/** global-section lines. */
export function haproxyGlobal(c: BalancerConfig): string {
  if (!c.tls) return '';
  return '    ssl-default-bind-options ssl-min-ver TLSv1.2\n';
}

/** The bind line's TLS part: each certificate (HAProxy picks by SNI from the certificates' own names). */
export function haproxyBind(c: BalancerConfig): string {
  if (!c.tls) return '';
  return ` ssl${c.tls.certs.map((p) => ` crt ${p.cert}`).join('')} alpn http/1.1 ssl-min-ver TLSv1.2`;
}

/** Comment above the bind line: where HAProxy finds the keys. */
export function haproxyBindNote(c: BalancerConfig): string {
  if (!c.tls) return '';
  const separate = c.tls.certs.filter((p) => p.key !== p.cert && p.key !== `${p.cert}.key`);
  const lines = ['    # TLS 1.2+, ALPN http/1.1; HAProxy reads each key from its certificate file or from <certificate>.key'];
  for (const p of separate) lines.push(`    #   ln -s ${p.key} ${p.cert}.key`);
  return `${lines.join('\n')}\n`;
}

/** frontend lines: proto, HSTS, the rate limit (tracked in its own table), trusted proxies. */
export function haproxyFrontend(c: BalancerConfig, trusted: readonly string[]): string {
  const out: string[] = [];
  out.push(`    http-request set-header X-Forwarded-Proto ${c.tls ? 'https' : 'http'}`);
  if (c.tls && c.tls.hsts > 0) out.push(`    http-response set-header Strict-Transport-Security "max-age=${c.tls.hsts}"`);
  if (c.rateLimit) {
    const perSecond = c.rateLimit.perMs * 1000;
    // A token bucket of `burst` refilled at `rate` lets `burst` through in burst/rate seconds: the same budget
    // as a sliding window of that length (HAProxy counts windows, not buckets).
    const window = Math.max(1, Math.round(c.rateLimit.burst / perSecond));
    const limit = Math.max(1, Math.round(perSecond * window));
    out.push(`    # rateLimit: about ${limit} requests per ${window}s per client address (burst ${c.rateLimit.burst}), 429 with Retry-After beyond`);
    if (trusted.length > 0) {
      out.push(`    acl cs_trusted_proxy src ${trusted.join(' ')}`);
      out.push('    http-request track-sc1 req.hdr_ip(X-Forwarded-For,-1) table cs_rate if cs_trusted_proxy { req.hdr_ip(X-Forwarded-For,-1) -m found }');
      out.push('    http-request track-sc1 src table cs_rate unless cs_trusted_proxy { req.hdr_ip(X-Forwarded-For,-1) -m found }');
    } else out.push('    http-request track-sc1 src table cs_rate');
    out.push(
      `    http-request return status 429 content-type application/json hdr Retry-After 1 hdr Cache-Control no-store string '{"error":"too many requests from this address","code":"CS_ERR_BALANCER_RATE_LIMITED"}' if { sc_http_req_rate(1) gt ${limit} }`,
    );
  }
  return `${out.join('\n')}\n`;
}

/** backend lines: compression and the cache. */
export function haproxyBackend(c: BalancerConfig, x: ExportExtras): string {
  const out: string[] = [];
  if (c.compress) out.push('    # compress: gzip of compressible answers the instance sent uncompressed', '    compression algo gzip', `    compression type ${COMPRESSIBLE}`);
  if (x.cache) {
    out.push(
      "    # cache: static assets, for as long as their Cache-Control allows (answers with Set-Cookie are never stored)",
      `    http-request set-var(txn.cs_static) bool(true) if { path_end ${STATIC_SUFFIXES} }`,
      '    http-request cache-use cs_static if { var(txn.cs_static) -m bool }',
      '    http-response cache-store cs_static if { var(txn.cs_static) -m bool }',
    );
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/** Sections after the backend: the rate table, the cache, the redirecting frontend. */
export function haproxySections(c: BalancerConfig, x: ExportExtras, tlsPort: number): string {
  let out = '';
  if (c.rateLimit) {
    const window = Math.max(1, Math.round(c.rateLimit.burst / (c.rateLimit.perMs * 1000)));
    out += `\nbackend cs_rate\n    stick-table type ipv6 size ${c.rateLimit.maxClients} expire ${Math.max(10, window * 2)}s store http_req_rate(${window}s)\n`;
  }
  if (x.cache) out += '\ncache cs_static\n    total-max-size 256\n    max-object-size 10485760\n    max-age 3600\n';
  if (c.tls && c.tls.redirect) {
    const names = [...new Set(sites(c).flatMap((s) => s.names))];
    const exact = names.filter((n) => !n.startsWith('*.'));
    const wild = names.filter((n) => n.startsWith('*.')).map((n) => `^[^.]+${n.slice(1).replace(/\./g, '\\.')}$`);
    out += `
# tls.redirect: plain HTTP answers 308 to the same host and path over HTTPS, only for the certificates' names
frontend cluster_session_redirect
    bind ${hostPort(c.tls.redirect.host, c.tls.redirect.port)}
${exact.length ? `    acl cs_known_host req.hdr(host),field(1,:),lower -m str ${exact.join(' ')}\n` : ''}${wild.length ? `    acl cs_known_host req.hdr(host),field(1,:),lower -m reg ${wild.join(' ')}\n` : ''}    http-request deny deny_status 400 unless cs_known_host
    http-request redirect location https://%[req.hdr(host),field(1,:)]${tlsPort === 443 ? '' : `:${tlsPort}`}%[capture.req.uri] code 308
`;
  }
  return out;
}
