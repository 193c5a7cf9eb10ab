import { STRATEGIES } from '@cluster-session/balancer';
import { runtimeDir } from '@cluster-session/cluster';

/**
 * Every help text, in one style: a usage line, one sentence on what the command does, then its options, each
 * flag with its value and its default. `help` is printed for `cluster-session <command> --help`.
 */
const strategies = STRATEGIES.join(' | ');
/** The TLS and edge flags, the same for `balance` and for the nginx/HAProxy/Apache exports. */
const EDGE = `      --tls-cert FILE       PEM certificate (chain): HTTPS on --listen (repeat with --tls-key for SNI; the
                            first pair is the default). TLS 1.2+, ALPN http/1.1
      --tls-key FILE        PEM private key of the --tls-cert before it
      --hsts SECONDS        Strict-Transport-Security max-age on every answer (TLS only; default none)
      --redirect-http PORT|HOST:PORT  plain listener answering 308 to the same host and path over HTTPS
      --rate-limit N/s|N/m  requests per client address (token bucket); beyond: 429 with Retry-After
      --burst N             requests above the rate a client may make at once (default twice the rate per second)
      --trusted-proxy A     trust X-Forwarded-* only from proxy address or CIDR A (repeat); the rate limit
                            then keys on the client address it reports
      --compress            brotli/gzip compressible answers by Accept-Encoding (the instance's own encoding kept)
      --max-conn-per-client N   open connections per client address, 429 beyond (0 = no cap; default
                            a quarter of the connection limit, at most 256)
      --max-header-count N  header fields a request may have, 431 beyond (default 100)`;

const HELP = {
  main: () => `Usage: cluster-session <command> [options]

Runs an app on every core (a cluster), balances several instances, and exports the same setup for nginx, HAProxy or Apache.

Commands:
  start <entry>             run <entry> on N workers in the foreground (SIGHUP reloads, SIGTERM/SIGINT drain and stop)
  reload                    zero-downtime rolling reload of a running cluster (--update-env: with this shell's environment)
  scale N                   change the worker count of a running cluster, through the reload path
  status                    each worker of a running cluster: pid, state, uptime, restarts, memory, CPU, requests
  stop                      graceful stop of a running cluster
  balance                   run the HTTP/WebSocket load balancer in the foreground
  export nginx|haproxy|apache|systemd   print a proxy configuration for the same upstreams, or a systemd unit

Options:
  -h, --help                this help; 'cluster-session <command> --help' for a command's options
  -v, --version             print the version

Exit codes: 0 done, 1 a runtime failure, 2 a wrong command line or configuration.
Control sockets live in ${runtimeDir()} (CLUSTER_SESSION_RUNTIME_DIR overrides).`,

  start: () => `Usage: cluster-session start <entry> [options] [-- app args]
       cluster-session start --config FILE [options]

Runs <entry> on N workers in the foreground: SIGHUP reloads, SIGTERM/SIGINT drain and exit 0, a second SIGINT stops at once.

Options:
      --config FILE         JSON or YAML file of startCluster() options (entry, workers, env, args, execArgv,
                            port, readyTimeout, killTimeout, maxMemory, logFormat...); flags given override its
                            keys; every reload re-reads it (env, args, entry, workers, timeouts may change)
  -i, --instances N|max     worker count (default: WORKERS env, else CPU count)
      --port P              PORT for the workers; the port the primary listens on with --sticky
      --sticky              route each client address to the same worker (the primary accepts connections)
      --host H              sticky: address to bind (default: all)
      --trust-proxy         sticky: key on X-Forwarded-For of the first request (direct peer is the proxy)
      --trusted-proxy A     sticky: trust X-Forwarded-For only from proxy address A (repeatable)
      --name NAME           cluster name: log prefix and control socket (default: entry base name)
      --wait-ready          a worker is ready when the app calls ready(), not on listening
      --ready-timeout MS    a worker not ready by then has failed (default 10000)
      --kill-timeout MS     retiring workers are killed after this (default 5000)
      --max-memory SIZE     replace a worker above this RSS, e.g. 512M (through the reload path)
      --max-restarts N      consecutive crashes before a slot is parked (default 10)
      --restart-delay MS    first restart delay after a crash; doubles per crash in a row (default 100)
      --max-restart-delay MS  cap of that delay (default 15000)
      --stable-after MS     uptime after which a crash starts again at --restart-delay (default 30000)
      --policy rr|os        connection scheduling (default rr)
      --metrics [HOST:]PORT serve Prometheus /metrics (every worker, labelled by slot) and /status.json
                            (host defaults to 127.0.0.1)
      --log-format text|json  text: each line timestamped, [slot N pid P]; json: one object a line (an app's
                            JSON line keeps its fields and gains slot, pid, time); workers get LOG_FORMAT
                            (default: LOG_FORMAT env, else text)
  -h, --help                this help`,

  reload: () => `Usage: cluster-session reload [--update-env] [--name NAME]

Rolling reload: one worker at a time, the new one ready before the old one drains. Exit 1 if aborted (the old workers keep serving).
A cluster started with --config re-reads its file first; a file that is refused leaves every worker as it is.

Options:
      --update-env          the new workers start from this shell's environment (it replaces the primary's)
      --name NAME           the cluster (default: the only one running)
  -h, --help                this help`,

  scale: () => `Usage: cluster-session scale N [--name NAME]

Changes the worker count of a running cluster, queued with reloads: new workers start one at a time, each ready
before the next; removed ones drain as a reload's old workers do. The count stays across reloads until a
--config file's workers value itself changes.

Options:
      --name NAME           the cluster (default: the only one running)
  -h, --help                this help`,

  status: () => `Usage: cluster-session status [--json] [--name NAME]

Each worker of a running cluster: slot, pid, state, uptime, restarts, memory (RSS and heap), CPU, requests (total
and per second), request latency p99 and event-loop delay p99 over the last 15-30 s.

Options:
      --json                the same as JSON, with the session store's figures
      --name NAME           the cluster (default: the only one running; with several, each of them)
  -h, --help                this help`,

  stop: () => `Usage: cluster-session stop [--name NAME]

Graceful stop: every worker drains, then the primary exits 0.

Options:
      --name NAME           the cluster (default: the only one running)
  -h, --help                this help`,

  balance: () => `Usage: cluster-session balance --listen PORT --upstream URL [--upstream URL...] [options]
       cluster-session balance --config FILE [options]

Runs the HTTP/WebSocket load balancer in the foreground (SIGINT/SIGTERM: finish in-flight requests, exit 0;
SIGHUP: re-read --config and the TLS certificate files, applied without dropping a connection; SIGUSR1: reopen
the access log).

Options:
      --config FILE         JSON or YAML file of the balancer's options (listen, upstreams, strategy, health,
                            limits, timeouts, retries, accessLog...); flags given override its keys. SIGHUP
                            re-reads it: added instances take traffic, removed ones drain; an invalid file is
                            refused in one log line and the running configuration stays
      --listen PORT|HOST:PORT   address to listen on (host defaults to 127.0.0.1)
      --upstream URL        an instance, e.g. http://127.0.0.1:4001 (repeat; URL#WEIGHT sets a weight)
      --strategy NAME       ${strategies} (default round-robin)
      --workers N           proxy on N threads sharing the port (SO_REUSEPORT, Linux); health checks, the
                            admin server and the per-client limits stay one for the whole balancer (default 1)
      --admin PORT|HOST:PORT    serve the status page (HTML at /, JSON at /status.json, /stack.json)
                            and Prometheus metrics at /metrics
      --upstream-status URL an instance's cluster --metrics address (repeat, in --upstream order): the
                            status page shows its workers
      --no-metrics          no /metrics and no per-request figures (the status page keeps its tables)
      --health-path PATH    active health check path (default /healthz)
      --no-health           no active health checks (passive checks stay on)
      --retries N           extra attempts on other instances when safe (default 2)
      --reuse shared|client instance connections pooled across clients (default) or one per client connection
                            (use client in front of Node clusters: they deal connections, not requests)
      --trust-proxy         trust X-Forwarded-* and X-Request-Id from the client (only behind your own proxy)
      --access-log -|FILE   write an access log line per request to stdout or FILE (SIGUSR1 reopens FILE)
      --access-log-format json|combined  one JSON object a line (default), or nginx's combined format plus
                            rt= (seconds), ua= (instance) and rid= (request id)
      --no-request-id       do not add X-Request-Id (by default a new UUID, or a trusted proxy's)
${EDGE}
  -h, --help                this help

SIGHUP also re-reads the --tls-cert/--tls-key files: new connections get the new certificate, open ones go on;
a file that does not load keeps the previous certificate (one log line says why).`,

  export: () => `Usage: cluster-session export nginx|haproxy|apache --upstream URL [--upstream URL...] [options]
       cluster-session export systemd [--name NAME] [options] -- <start arguments>

Prints a complete nginx, HAProxy or Apache httpd (mod_proxy_balancer) configuration with the same upstreams and
strategy, an access log in the balancer's format and an X-Request-Id per request; or a systemd unit that runs
'cluster-session start <start arguments>' (reload = SIGHUP, graceful stop above the drain, sandboxed).

Options:
      --upstream URL        an instance (repeat; URL#WEIGHT sets a weight)
      --strategy NAME       ${strategies} (default round-robin)
      --listen PORT|HOST:PORT   address the server should listen on (default 127.0.0.1:8080)
      --health-path PATH    health check path (default /healthz)
      --reuse shared|client keepalive pool (default), or no pool / HAProxy http-reuse never
      --workers N           nginx worker_processes N / HAProxy nbthread N (default: one per core)
${EDGE}
      --cache               cache static assets (nginx proxy_cache, HAProxy cache) for the Cache-Control they carry

Options (systemd):
      --name NAME           the cluster and unit name (default app)
      --user USER           run as USER (default: DynamicUser, a fresh unprivileged user)
      --working-directory DIR   the app's directory (default: the current one)
      --read-write DIR      a directory the app may write, e.g. .data (repeatable; the rest is read-only)
      --env NAME=VALUE      an Environment= line (repeatable; NODE_ENV=production is set)
      --kill-timeout MS     the drain bound TimeoutStopSec must exceed (default: the start arguments', else 5000)
      --node PATH           the node binary (default: the one running this command)
  -h, --help                this help`,
} satisfies Record<string, () => string>;

type HelpTopic = keyof typeof HELP;

export function help(topic: HelpTopic): number {
  process.stdout.write(`${HELP[topic]()}\n`);
  return 0;
}
