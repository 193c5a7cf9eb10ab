import { hostPort } from './address.ts';
import { BalancerConfigError } from './errors.ts';
import { haproxyBackend, haproxyBind, haproxyBindNote, haproxyFrontend, haproxyGlobal, haproxySections, nginxExtraServers, nginxHttp, nginxServer, nginxStaticLocation, type ExportExtras } from './export-edge.ts';
import { apache } from './export-apache.ts';
import { balancerConfig, type BalancerConfig, type BalancerOptions } from './options.ts';

export type ExportTarget = 'nginx' | 'haproxy' | 'apache';

/**
 * The same upstreams, strategy, health checks and timeouts as configuration for nginx, HAProxy or Apache httpd,
 * for production setups that put one of those in front instead of the bundled balancer. Output is a complete
 * config file that `nginx -t -c FILE` / `haproxy -c -f FILE` / `apache2ctl -t -f FILE` accept, with an access
 * log in the bundled balancer's format (accessLog's path, else stdout) and an X-Request-Id per request.
 */
export function exportConfig(
  target: ExportTarget,
  options: Omit<BalancerOptions, 'listen'> & { listen?: BalancerOptions['listen'] } & { cache?: boolean },
): string {
  const { cache, ...rest } = options;
  const config = balancerConfig({ listen: 8080, ...rest } as BalancerOptions, 'exportConfig');
  const extras: ExportExtras = { cache: cache === true };
  const trusted = options.trustedProxies ?? [];
  if (target === 'nginx') return nginx(config, extras, trusted);
  if (target === 'haproxy') return haproxy(config, extras, trusted);
  if (target === 'apache') return apache(config);
  throw new BalancerConfigError(`exportConfig: target ${JSON.stringify(target)} is not nginx, haproxy or apache. Fix: pass 'nginx', 'haproxy' or 'apache'.`);
}

/** Statuses nginx `proxy_next_upstream http_NNN` and HAProxy `retry-on` know. */
const NGINX_NEXT = new Set([500, 502, 503, 504]);
const HAPROXY_RETRY = new Set([500, 501, 502, 503, 504]);

const seconds = (ms: number) => `${Math.max(1, Math.ceil(ms / 1000))}s`;

function nginx(c: BalancerConfig, x: ExportExtras, trusted: readonly string[]): string {
  const passive = c.passive ? ` max_fails=${c.passive.failures} fail_timeout=${seconds(c.passive.cooldown)}` : ' max_fails=0';
  const cap = c.limits.perUpstream ? ` max_conns=${c.limits.perUpstream}` : '';
  const servers = c.upstreams.map((u) => `        server ${hostPort(u.host, u.port)} weight=${u.weight}${passive}${cap};  # ${u.id}`).join('\n');
  let method = '';
  let sticky = '';
  let stickyMaps = '';
  switch (c.strategy) {
    case 'round-robin':
      method = '        # strategy round-robin: nginx default (smooth weighted round robin, same algorithm as the bundled balancer)';
      break;
    case 'least-conn':
      method = '        least_conn;';
      break;
    case 'ip-hash':
      method = [
        '        # ip_hash would key on the first three octets only; a consistent hash of the whole address moves',
        '        # few clients when an instance is added or removed, like the bundled rendezvous hashing.',
        '        hash $remote_addr consistent;',
      ].join('\n');
      break;
    case 'cookie':
      method = [
        `        # Sticky cookie: open-source nginx has \`sticky cookie\` only from 1.29.6 (Debian 12 ships 1.22).`,
        '        # Portable equivalent used here: a client without the cookie gets a random key ($request_id) in',
        `        # cookie ${c.cookie.name}, and requests are routed by a consistent hash of that key, so a client stays on`,
        '        # one instance and only the clients of a lost instance move. On nginx >= 1.29.6 you may use instead:',
        `        #   sticky cookie ${c.cookie.name} path=/ httponly;`,
        '        hash $cs_sticky_key consistent;',
      ].join('\n');
      stickyMaps = [
        `    map $cookie_${c.cookie.name} $cs_sticky_key {`,
        '        ""      $request_id;',
        `        default $cookie_${c.cookie.name};`,
        '    }',
        `    map $cookie_${c.cookie.name} $cs_sticky_set_cookie {`,
        `        ""      "${c.cookie.name}=$request_id; Path=/; HttpOnly; SameSite=Lax${c.cookie.secure ? '; Secure' : ''}";`,
        '        default "";',
        '    }',
        '    # Like HAProxy `nocache`: an answer that pins a client must not be cached and served to others.',
        `    map $cookie_${c.cookie.name} $cs_sticky_cache_control {`,
        '        ""      private;',
        '        default "";',
        '    }',
        '',
      ].join('\n');
      sticky = '            add_header Set-Cookie $cs_sticky_set_cookie always;\n            add_header Cache-Control $cs_sticky_cache_control always;\n';
      break;
  }
  // The proxying of every location (and of every TLS server), written once.
  const proxied = `            proxy_pass http://cluster_session;
            proxy_http_version 1.1;
            proxy_set_header Connection ${c.reuse === 'client' ? '$cs_connection_upgrade_or_close' : '$cs_connection_upgrade'};
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For ${c.trustProxy ? '$proxy_add_x_forwarded_for' : '$remote_addr'};
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Request-Id $cs_request_id;
            proxy_connect_timeout ${seconds(c.timeouts.connect)};
            proxy_read_timeout ${seconds(c.timeouts.response)};
            proxy_send_timeout ${seconds(c.timeouts.response)};
            # Same retry rule as the bundled balancer: errors and timeouts go to the next instance; since nginx
            # 1.9.13 requests with non-idempotent methods are not retried once sent.
            proxy_next_upstream error timeout${[...c.retryOn].filter((s) => NGINX_NEXT.has(s)).map((s) => ` http_${s}`).join('')};
            proxy_next_upstream_tries ${c.retries + 1};
`;
  return `# nginx configuration generated by cluster-session (strategy: ${c.strategy}).
# Check it with: nginx -t -c /path/to/this/file
# Active health checks (GET ${c.health ? c.health.path : '-'}) need nginx Plus or HAProxy; open-source nginx
# only has the passive checks below (max_fails / fail_timeout).
${c.workers > 1 ? `# workers: ${c.workers} proxy threads in the bundled balancer.\nworker_processes ${c.workers};` : 'worker_processes auto;'}
pid nginx.pid;
error_log stderr warn;

events {
    worker_connections 4096;
}

http {
${nginxAccessLog(c)}
    client_header_timeout ${seconds(c.timeouts.clientHeaders)};
    keepalive_timeout ${seconds(c.timeouts.keepAlive)};
    large_client_header_buffers 4 ${Math.ceil(c.limits.headerSize / 1024)}k;
${c.limits.bodySize ? `    client_max_body_size ${c.limits.bodySize};\n` : '    client_max_body_size 0;\n'}${nginxPerClient(c)}${nginxHttp(c, x, trusted)}
    map $http_upgrade $cs_connection_upgrade {
        default upgrade;
        ""      "";
    }
    map $http_upgrade $cs_connection_upgrade_or_close {
        default upgrade;
        ""      close;
    }
${stickyMaps}
    upstream cluster_session {
${method}
${servers}
${
  c.reuse === 'client'
    ? [
        "        # reuse 'client': nginx cannot tie an instance connection to one client connection, so there is no",
        '        # keepalive pool: every request opens its own instance connection (stricter than the bundled balancer,',
        '        # which keeps one per client connection; both deal requests over a cluster\'s workers and never carry',
        '        # two clients on one connection).',
      ].join('\n')
    : `        keepalive ${Math.min(Math.max(c.limits.idlePerUpstream, 1), 1024)};\n        keepalive_timeout ${seconds(c.timeouts.upstreamIdle)};`
}
    }

    server {
${nginxServer(c, hostPort(c.host, c.port))}
${nginxStaticLocation(x, proxied)}        location / {
${proxied}            proxy_buffering off;
${sticky}        }
    }
${nginxExtraServers(c, hostPort(c.host, c.port), `        location / {\n${proxied}            proxy_buffering off;\n${sticky}        }\n`)}}
`;
}

/** The balancer's access log as nginx log_format (combined plus rt/ua/rid, or JSON) and its request id. */
function nginxAccessLog(c: BalancerConfig): string {
  // Not /dev/stdout: nginx opens its log, which fails when stdout is a socket (systemd's journal): a file in the prefix.
  const to = c.accessLog && c.accessLog.path !== '-' ? c.accessLog.path : 'access.log';
  const json = c.accessLog && c.accessLog.format === 'json';
  const format = json
    ? `log_format cluster_session escape=json '{"time":"$time_iso8601","client":"$remote_addr","method":"$request_method","path":"$request_uri","protocol":"$server_protocol","status":$status,"bytes":$bytes_sent,"upstream":"$upstream_addr","duration":$request_time,"requestId":"$cs_request_id","referer":"$http_referer","userAgent":"$http_user_agent"}';`
    : `log_format cluster_session '$remote_addr - $remote_user [$time_local] "$request" $status $bytes_sent "$http_referer" "$http_user_agent" rt=$request_time ua="$upstream_addr" rid=$cs_request_id';`;
  return [
    c.trustProxy
      ? '    # X-Request-Id: a trusted proxy\'s, else nginx\'s own $request_id (as the bundled balancer does).\n    map $http_x_request_id $cs_request_id {\n        ""      $request_id;\n        default $http_x_request_id;\n    }'
      : '    # X-Request-Id: always nginx\'s own (a client cannot choose the id of its request).\n    map $request_id $cs_request_id {\n        default $request_id;\n    }',
    `    ${format}`,
    `    access_log ${to} cluster_session;`,
  ].join('\n');
}

/**
 * limits.perClient as nginx limit_conn. nginx counts a client's connections with a request in progress (idle
 * keep-alive ones are left to keepalive_timeout and client_header_timeout), the bundled balancer all open ones.
 */
function nginxPerClient(c: BalancerConfig): string {
  if (!c.limits.perClient) return '';
  return [
    `    # limits.perClient: ${c.limits.perClient} per client address (nginx counts connections with a request in progress)`,
    '    limit_conn_zone $binary_remote_addr zone=cs_per_client:10m;',
    `    limit_conn cs_per_client ${c.limits.perClient};`,
    '    limit_conn_status 429;',
    '',
  ].join('\n');
}

/** limits.perClient as an HAProxy stick table of open connections per source address (what the balancer counts). */
function haproxyPerClient(c: BalancerConfig): string {
  if (!c.limits.perClient) return '';
  return [
    `    # limits.perClient: at most ${c.limits.perClient} open connections per client address, 429 beyond`,
    '    stick-table type ipv6 size 100k expire 60s store conn_cur',
    '    tcp-request connection track-sc0 src',
    `    http-request deny deny_status 429 if { sc_conn_cur(0) gt ${c.limits.perClient} }`,
    '',
  ].join('\n');
}

function haproxy(c: BalancerConfig, x: ExportExtras, trusted: readonly string[]): string {
  const balance = {
    'round-robin': '    balance roundrobin',
    'least-conn': '    balance leastconn',
    'ip-hash': '    balance source\n    hash-type consistent',
    cookie: `    balance roundrobin\n    cookie ${c.cookie.name} insert indirect nocache httponly${c.cookie.secure ? ' secure' : ''}`,
  }[c.strategy];
  const check = c.health ? ` check inter ${c.health.interval}ms fall ${c.health.fall} rise ${c.health.rise}` : '';
  const observe = c.passive ? ` observe layer7 error-limit ${c.passive.failures} on-error mark-down` : '';
  const servers = c.upstreams
    .map((u) => `    server ${u.id} ${hostPort(u.host, u.port)} weight ${u.weight}${c.limits.perUpstream ? ` maxconn ${c.limits.perUpstream}` : ''}${check}${c.health ? observe : ''}${c.strategy === 'cookie' ? ` cookie ${u.id}` : ''}`)
    .join('\n');
  const healthLines = c.health ? `    option httpchk\n    http-check send meth GET uri ${c.health.path}\n    timeout check ${c.health.timeout}ms\n` : '';
  return `# HAProxy configuration generated by cluster-session (strategy: ${c.strategy}).
# Check it with: haproxy -c -f /path/to/this/file
global
    # Raise with the file-descriptor limit (HAProxy needs about two per connection).
    maxconn 4096
    # limits.headerCount (HAProxy counts the start line too)
    tune.http.maxhdr ${c.limits.headerCount + 1}
    # HAProxy writes its log lines to its own stdout (the journal under systemd).
    log stdout format raw local0 info
${c.workers > 1 ? `    # workers: ${c.workers} proxy threads in the bundled balancer (HAProxy's default is one per core).\n    nbthread ${c.workers}\n` : ''}${haproxyGlobal(c)}
defaults
    mode http
    option http-keep-alive
    timeout connect ${c.timeouts.connect}ms
    timeout client ${c.timeouts.response}ms
    timeout server ${c.timeouts.response}ms
    timeout http-request ${c.timeouts.clientHeaders}ms
    timeout http-keep-alive ${c.timeouts.keepAlive}ms
    timeout tunnel ${c.timeouts.tunnel}ms
    # A failed connection is retried on another instance (redispatch), like the bundled balancer.
    retries ${c.retries}
    option redispatch
    retry-on conn-failure empty-response response-timeout${[...c.retryOn].filter((s) => HAPROXY_RETRY.has(s)).map((s) => ` ${s}`).join('')}

frontend cluster_session_in
${haproxyBindNote(c)}    bind ${hostPort(c.host, c.port)}${haproxyBind(c)}
${haproxyPerClient(c)}    log global
    # A request id per request (a UUID, as the bundled balancer's), sent to the instance and logged.
    unique-id-format %[uuid()]
${c.trustProxy ? '' : '    # A client cannot choose the id of its request (the bundled balancer replaces it too).\n    http-request del-header X-Request-Id\n'}    unique-id-header X-Request-Id
    http-request capture req.hdr(Referer) len 256
    http-request capture req.hdr(User-Agent) len 256
    # The bundled balancer's combined format (rt= is milliseconds here).
    log-format "%ci - - [%tr] \\"%HM %HU %HV\\" %ST %B \\"%[capture.req.hdr(0)]\\" \\"%[capture.req.hdr(1)]\\" rt=%Ta ua=\\"%si:%sp\\" rid=%ID"
${haproxyFrontend(c, trusted)}    option forwardfor${c.trustProxy ? '' : '\n    http-request del-header X-Forwarded-For'}
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend cluster_session

backend cluster_session
${balance}${c.reuse === 'client' ? "\n    # reuse 'client': an instance connection serves one client connection only\n    http-reuse never" : ''}
${healthLines}${haproxyBackend(c, x)}${servers}
${haproxySections(c, x, c.port)}`;
}
