import { execFile } from 'node:child_process';
import net from 'node:net';
import { freePort } from './ports.ts';
import { until } from './wait.ts';
import type { Proc } from './process.ts';
import { startRedis, type RedisAddress, type RedisServer } from './redis.ts';

/**
 * Runs one `redis-cli` command against a port of 127.0.0.1, or an address (inside its network namespace, with its
 * password), and resolves with its raw (no-TTY) output.
 */
export function redisCli(target: number | RedisAddress, args: readonly string[], timeoutMs = 5_000): Promise<string> {
  const t: RedisAddress = typeof target === 'number' ? { port: target } : target;
  const bin = process.env.REDIS_CLI ?? 'redis-cli';
  const cli = ['-h', t.host ?? '127.0.0.1', '-p', String(t.port), ...(t.password ? ['--no-auth-warning', '-a', t.password] : []), ...args];
  const [command, argv] = t.netns ? ['ip', ['netns', 'exec', t.netns, bin, ...cli]] : [bin, cli];
  return new Promise((resolve, reject) => {
    execFile(command, argv, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli -h ${t.host ?? '127.0.0.1'} -p ${t.port} ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

/** A "host" of a multi-host test: a network namespace the test created, and the address it has there. */
export interface NetnsHost {
  readonly netns: string;
  readonly address: string;
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A free port whose cluster bus port (port + 10000) is free too. */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = await freePort();
    if (port > 55_535 || taken.has(port) || taken.has(port + 10_000)) continue;
    if (!(await portIsFree(port + 10_000))) continue;
    taken.add(port).add(port + 10_000);
    return port;
  }
  throw new Error('no free port pair (port, port + 10000) for a Redis Cluster node');
}

interface ClusterNodeInfo {
  id: string;
  host: string;
  port: number;
  flags: string[];
  /** Node id of its master ('-' for masters). */
  masterId: string;
  /** Slot ranges as [start, end] pairs (masters only). */
  slots: Array<[number, number]>;
}

/** Parses `CLUSTER NODES` output. */
function parseClusterNodes(text: string): ClusterNodeInfo[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((line) => {
      const [id, addr, flags, masterId, , , , , ...slots] = line.trim().split(/\s+/);
      const hostPort = addr!.split('@')[0]!;
      const colon = hostPort.lastIndexOf(':');
      return {
        id: id!,
        host: hostPort.slice(0, colon),
        port: Number(hostPort.slice(colon + 1)),
        flags: flags!.split(','),
        masterId: masterId!,
        slots: slots
          .filter((s) => !s.startsWith('['))
          .map((s) => {
            const [a, b] = s.split('-');
            return [Number(a), Number(b ?? a)] as [number, number];
          }),
      };
    });
}

export interface RedisClusterNode {
  readonly port: number;
  readonly host: string;
  readonly address: RedisAddress;
  readonly server: RedisServer;
  /** The running redis-server process (replaced by start()). */
  readonly proc: Proc;
  /** False after kill() until start(). */
  readonly alive: boolean;
  /** Role as the node itself reports it now. */
  role(): Promise<'master' | 'slave'>;
  /** Kills the node (SIGKILL by default: a crash, no goodbye to the cluster). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and directory; it rejoins (a former master comes back as a replica). */
  start(): Promise<void>;
}

export interface RedisClusterOptions {
  masters?: number;
  replicasPerMaster?: number;
  /** `cluster-node-timeout`: how long a node may be unreachable before it is failed over. Default 1000 ms. */
  nodeTimeoutMs?: number;
  /** Extra `redis-server` arguments for every node, e.g. ['--appendonly', 'yes']. */
  args?: readonly string[];
  /**
   * Spread the nodes over these hosts (node i on hosts[i % n], ports 7000, 7001, ...), the masters on different
   * hosts and each replica on a host other than its master's (redis-cli's anti-affinity). Default: 127.0.0.1.
   */
  hosts?: readonly NetnsHost[];
  password?: string;
}

/** Limits a query to the nodes the caller can reach (e.g. not those behind a partition). */
export type Reachable = (node: RedisClusterNode) => boolean;

export interface RedisCluster {
  readonly nodes: readonly RedisClusterNode[];
  /** Seed list for `new Redis.Cluster(startupNodes)`. */
  readonly startupNodes: Array<{ host: string; port: number }>;
  /** Live masters that own slots, ordered by their first slot (index 0 serves slot 0). */
  masters(reachable?: Reachable): Promise<RedisClusterNode[]>;
  /** The replicas of a master, as the live cluster sees them. */
  replicasOf(master: RedisClusterNode): Promise<RedisClusterNode[]>;
  /** The node serving `key` now (CLUSTER KEYSLOT + slot map). */
  nodeForKey(key: string): Promise<RedisClusterNode>;
  /** Kills the i-th current master (see masters()) and returns it. */
  killMaster(i: number, signal?: NodeJS.Signals): Promise<RedisClusterNode>;
  /**
   * Waits until every slot is served by a live master and every live node says cluster_state:ok; resolves with
   * the masters then. Pass the killed (or partitioned) master to also require that one of its replicas took over,
   * and `reachable` to judge by the nodes on this side of a partition only.
   */
  waitForFailover(killed?: RedisClusterNode, timeoutMs?: number, reachable?: Reachable): Promise<RedisClusterNode[]>;
  /**
   * Waits until every replica has acknowledged its master's replication offset as it was when called (so a kill
   * loses nothing written before).
   */
  waitForReplication(timeoutMs?: number): Promise<void>;
  /** Waits for cluster_state:ok and full slot coverage on every live node. */
  waitForHealthy(timeoutMs?: number, reachable?: Reachable): Promise<void>;
  close(): Promise<void>;
}

function infoField(info: string, field: string): string | undefined {
  return info.match(new RegExp(`^${field}:(.*)$`, 'm'))?.[1]?.trim();
}

/**
 * A real Redis Cluster on 127.0.0.1 (or spread over network namespaces, see `hosts`): `masters * (1 +
 * replicasPerMaster)` redis-server processes with cluster-enabled, joined by `redis-cli --cluster create`, resolved
 * once every node reports cluster_state:ok.
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicasPerMaster ?? 1;
  const nodeTimeout = options.nodeTimeoutMs ?? 1_000;
  if (masters < 3) throw new Error(`startRedisCluster: masters must be >= 3 (redis-cli refuses fewer), got ${masters}`);
  const count = masters * (1 + replicas);
  const hosts = options.hosts;
  const placement: Array<{ port: number; host?: NetnsHost }> = [];
  if (hosts?.length) {
    for (let i = 0; i < count; i++) placement.push({ port: 7000 + Math.floor(i / hosts.length), host: hosts[i % hosts.length]! });
  } else {
    const taken = new Set<number>();
    for (let i = 0; i < count; i++) placement.push({ port: await clusterPort(taken) });
  }

  const args = [
    '--cluster-enabled', 'yes',
    '--cluster-config-file', 'nodes.conf',
    '--cluster-node-timeout', String(nodeTimeout),
    // A replica may always take over, however long its link was down: tests kill masters on purpose.
    '--cluster-replica-validity-factor', '0',
    // A replica's first sync starts at once rather than after Redis' default 5 s diskless-sync delay.
    '--repl-diskless-sync-delay', '0',
    ...(options.args ?? []),
  ];
  const servers = await Promise.all(
    placement.map(({ port, host }) =>
      startRedis({
        port,
        // In a namespace the node announces the namespace's address, the one every other host reaches it by.
        args: host ? [...args, '--cluster-announce-ip', host.address] : args,
        ...(host ? { netns: host.netns, host: host.address } : {}),
        ...(options.password ? { password: options.password } : {}),
      }),
    ),
  );
  const nodes: RedisClusterNode[] = servers.map((server) => {
    let alive = true;
    return {
      port: server.port,
      host: server.host,
      address: server.address,
      server,
      get proc() {
        return server.proc;
      },
      get alive() {
        return alive;
      },
      async role() {
        return infoField(await redisCli(server.address, ['INFO', 'replication']), 'role') as 'master' | 'slave';
      },
      async kill(signal = 'SIGKILL') {
        alive = false;
        await server.stop(signal);
      },
      async start() {
        await server.start();
        alive = true;
      },
    };
  });
  const byAddr = (n: { host: string; port: number }) => {
    const node = nodes.find((x) => x.port === n.port && x.host === n.host);
    if (!node) throw new Error(`the cluster names an unknown node ${n.host}:${n.port}`);
    return node;
  };
  const all: Reachable = () => true;
  const live = (reachable: Reachable = all) => nodes.filter((n) => n.alive && reachable(n));
  const failed = (n: ClusterNodeInfo) => n.flags.some((f) => f.startsWith('fail'));

  const view = async (reachable?: Reachable): Promise<ClusterNodeInfo[]> => parseClusterNodes(await redisCli(live(reachable)[0]!.address, ['CLUSTER', 'NODES']));
  const liveMasters = async (reachable?: Reachable): Promise<RedisClusterNode[]> =>
    (await view(reachable))
      .filter((n) => n.flags.includes('master') && !failed(n) && n.slots.length > 0)
      .sort((a, b) => a.slots[0]![0] - b.slots[0]![0])
      .map(byAddr);

  const healthy = async (reachable?: Reachable): Promise<true | undefined> => {
    for (const node of live(reachable)) {
      const info = await redisCli(node.address, ['CLUSTER', 'INFO']);
      if (infoField(info, 'cluster_state') !== 'ok' || infoField(info, 'cluster_slots_ok') !== '16384') return undefined;
      if (Number(infoField(info, 'cluster_known_nodes')) !== nodes.length) return undefined;
    }
    return true;
  };

  const cluster: RedisCluster = {
    nodes,
    startupNodes: servers.map((s) => ({ host: s.host, port: s.port })),
    masters: liveMasters,
    async replicasOf(master) {
      const info = await view();
      const id = info.find((n) => n.port === master.port && n.host === master.host)?.id;
      return info.filter((n) => n.masterId === id && !failed(n)).map(byAddr);
    },
    async nodeForKey(key) {
      const slot = Number(await redisCli(live()[0]!.address, ['CLUSTER', 'KEYSLOT', key]));
      const owner = (await view()).find((n) => n.flags.includes('master') && !failed(n) && n.slots.some(([a, b]) => slot >= a && slot <= b));
      if (!owner) throw new Error(`no live master serves slot ${slot} (key ${key})`);
      return byAddr(owner);
    },
    async killMaster(i, signal = 'SIGKILL') {
      const current = await liveMasters();
      const node = current[i];
      if (!node) throw new Error(`killMaster(${i}): there are ${current.length} live masters`);
      await node.kill(signal);
      return node;
    },
    async waitForFailover(killed, timeoutMs = 20_000, reachable) {
      return until('Redis Cluster failover', async () => {
        if (!(await healthy(reachable))) return undefined;
        const current = await liveMasters(reachable);
        if (killed && current.includes(killed)) return undefined;
        const covered = (await view(reachable))
          .filter((n) => current.some((m) => m.port === n.port && m.host === n.host))
          .reduce((sum, n) => sum + n.slots.reduce((s, [a, b]) => s + b - a + 1, 0), 0);
        if (covered !== 16_384) return undefined;
        return current;
      }, timeoutMs, 100);
    },
    async waitForReplication(timeoutMs = 10_000) {
      // Caught up with what was written before this call: under load the masters' offsets keep moving.
      const replication = async (n: ClusterNodeInfo) => redisCli(byAddr(n).address, ['INFO', 'replication']);
      const info = await view();
      const masterNodes = info.filter((n) => n.flags.includes('master') && !failed(n));
      const targets = await Promise.all(masterNodes.map(async (m) => Number(infoField(await replication(m), 'master_repl_offset'))));
      await until('Redis Cluster replication caught up', async () => {
        for (const [i, master] of masterNodes.entries()) {
          const expected = info.filter((n) => n.masterId === master.id && !failed(n)).length;
          const acked = [...(await replication(master)).matchAll(/^slave\d+:.*state=online.*offset=(\d+)/gm)].map((m) => Number(m[1]));
          if (acked.length < expected || acked.some((o) => o < targets[i]!)) return undefined;
        }
        return true;
      }, timeoutMs, 100);
    },
    async waitForHealthy(timeoutMs = 20_000, reachable) {
      await until('Redis Cluster cluster_state:ok on every node', () => healthy(reachable), timeoutMs, 100);
    },
    async close() {
      await Promise.all(servers.map((s) => s.close()));
    },
  };

  try {
    await redisCli(
      servers[0]!.address,
      ['--cluster', 'create', ...servers.map((s) => `${s.host}:${s.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'],
      60_000,
    );
    await cluster.waitForHealthy(30_000);
    await until('Redis Cluster replicas attached', async () => {
      const info = await view();
      return info.filter((n) => n.flags.includes('slave')).length === masters * replicas ? true : undefined;
    }, 30_000, 100);
    // Each replica must be attached (known to its master) before a test may rely on failover.
    await cluster.waitForReplication(30_000);
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}
