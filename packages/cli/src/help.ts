import { STRATEGIES } from '@cluster-session/balancer';
import { runtimeDir } from '@cluster-session/cluster';

/**
 * Every help text, in one style: a usage line, one sentence on what the command does, then its options, each
 * flag with its value and its default. `help` is printed for `cluster-session <command> --help`.
 */
const strategies = STRATEGIES.join(' | ');

const HELP = {
  main: () => `Usage: cluster-session <command> [options]

Runs an app on every core (a cluster), balances several instances, and exports the same setup for nginx or HAProxy.

Commands:
  start <entry>             run <entry> on N workers in the foreground (SIGHUP reloads, SIGTERM/SIGINT drain and stop)
  reload                    zero-downtime rolling reload of a running cluster
  status                    each worker of a running cluster: pid, state, uptime, restarts, memory, CPU, requests
  stop                      graceful stop of a running cluster
  balance                   run the HTTP/WebSocket load balancer in the foreground
  export nginx|haproxy      print nginx or HAProxy configuration for the same upstreams

Options:
  -h, --help                this help; 'cluster-session <command> --help' for a command's options
  -v, --version             print the version

Exit codes: 0 done, 1 a runtime failure, 2 a wrong command line or configuration.
Control sockets live in ${runtimeDir()} (CLUSTER_SESSION_RUNTIME_DIR overrides).`,

  start: () => `Usage: cluster-session start <entry> [options] [-- app args]

Runs <entry> on N workers in the foreground: SIGHUP reloads, SIGTERM/SIGINT drain and exit 0, a second SIGINT stops at once.

Options:
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
  -h, --help                this help`,

  reload: () => `Usage: cluster-session reload [--name NAME]

Rolling reload: one worker at a time, the new one ready before the old one drains. Exit 1 if aborted (the old workers keep serving).

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

Runs the HTTP/WebSocket load balancer in the foreground (SIGINT/SIGTERM: finish in-flight requests, exit 0).

Options:
      --listen PORT|HOST:PORT   address to listen on (host defaults to 127.0.0.1)
      --upstream URL        an instance, e.g. http://127.0.0.1:4001 (repeat; URL#WEIGHT sets a weight)
      --strategy NAME       ${strategies} (default round-robin)
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
      --trust-proxy         trust X-Forwarded-* from the client (only behind your own proxy)
  -h, --help                this help`,

  export: () => `Usage: cluster-session export nginx|haproxy --upstream URL [--upstream URL...] [options]

Prints a complete nginx or HAProxy configuration with the same upstreams and strategy.

Options:
      --upstream URL        an instance (repeat; URL#WEIGHT sets a weight)
      --strategy NAME       ${strategies} (default round-robin)
      --listen PORT|HOST:PORT   address the server should listen on (default 127.0.0.1:8080)
      --health-path PATH    health check path (default /healthz)
      --reuse shared|client keepalive pool (default), or no pool / HAProxy http-reuse never
  -h, --help                this help`,
} satisfies Record<string, () => string>;

type HelpTopic = keyof typeof HELP;

export function help(topic: HelpTopic): number {
  process.stdout.write(`${HELP[topic]()}\n`);
  return 0;
}
