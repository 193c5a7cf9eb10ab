import { execFile } from 'node:child_process';
import net from 'node:net';
import { freePort } from './ports.ts';
import { until } from './wait.ts';
import type { Proc } from './process.ts';
import { startRedis, type RedisServer } from './redis.ts';

/** Runs one `redis-cli` command against 127.0.0.1:port and resolves with its raw (no-TTY) output. */
export function redisCli(port: number, args: readonly string[], timeoutMs = 5_000): Promise<string> {
  const bin = process.env.REDIS_CLI ?? 'redis-cli';
  return new Promise((resolve, reject) => {
    execFile(bin, ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli -p ${port} ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout.trim());
    });
  });
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
      const port = Number(addr!.split('@')[0]!.split(':').pop());
      return {
        id: id!,
        port,
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
}

export interface RedisCluster {
  readonly nodes: readonly RedisClusterNode[];
  /** Seed list for `new Redis.Cluster(startupNodes)`. */
  readonly startupNodes: Array<{ host: string; port: number }>;
  /** Live masters that own slots, ordered by their first slot (index 0 serves slot 0). */
  masters(): Promise<RedisClusterNode[]>;
  /** The replicas of a master, as the live cluster sees them. */
  replicasOf(master: RedisClusterNode): Promise<RedisClusterNode[]>;
  /** The node serving `key` now (CLUSTER KEYSLOT + slot map). */
  nodeForKey(key: string): Promise<RedisClusterNode>;
  /** Kills the i-th current master (see masters()) and returns it. */
  killMaster(i: number, signal?: NodeJS.Signals): Promise<RedisClusterNode>;
  /**
   * Waits until every slot is served by a live master and every live node says cluster_state:ok; resolves with
   * the masters then. Pass the killed master to also require that one of its replicas took over.
   */
  waitForFailover(killed?: RedisClusterNode, timeoutMs?: number): Promise<RedisClusterNode[]>;
  /** Waits until every replica has acknowledged its master's replication offset (so a kill loses nothing). */
  waitForReplication(timeoutMs?: number): Promise<void>;
  /** Waits for cluster_state:ok and full slot coverage on every live node. */
  waitForHealthy(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

function infoField(info: string, field: string): string | undefined {
  return info.match(new RegExp(`^${field}:(.*)$`, 'm'))?.[1]?.trim();
}

/**
 * A real Redis Cluster on 127.0.0.1: `masters * (1 + replicasPerMaster)` redis-server processes with
 * cluster-enabled, joined by `redis-cli --cluster create`, resolved once every node reports cluster_state:ok.
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicasPerMaster ?? 1;
  const nodeTimeout = options.nodeTimeoutMs ?? 1_000;
  if (masters < 3) throw new Error(`startRedisCluster: masters must be >= 3 (redis-cli refuses fewer), got ${masters}`);
  const taken = new Set<number>();
  const ports: number[] = [];
  for (let i = 0; i < masters * (1 + replicas); i++) ports.push(await clusterPort(taken));

  const args = [
    '--cluster-enabled', 'yes',
    '--cluster-config-file', 'nodes.conf',
    '--cluster-node-timeout', String(nodeTimeout),
    // A replica may always take over, however long its link was down: tests kill masters on purpose.
    '--cluster-replica-validity-factor', '0',
    ...(options.args ?? []),
  ];
  const servers = await Promise.all(ports.map((port) => startRedis({ port, args })));
  const nodes: RedisClusterNode[] = servers.map((server) => {
    let alive = true;
    return {
      port: server.port,
      server,
      get proc() {
        return server.proc;
      },
      get alive() {
        return alive;
      },
      async role() {
        return infoField(await redisCli(server.port, ['INFO', 'replication']), 'role') as 'master' | 'slave';
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
  const byPort = (port: number) => nodes.find((n) => n.port === port)!;
  const live = () => nodes.filter((n) => n.alive);

  const view = async (): Promise<ClusterNodeInfo[]> => parseClusterNodes(await redisCli(live()[0]!.port, ['CLUSTER', 'NODES']));
  const liveMasters = async (): Promise<RedisClusterNode[]> =>
    (await view())
      .filter((n) => n.flags.includes('master') && !n.flags.some((f) => f.startsWith('fail')) && n.slots.length > 0)
      .sort((a, b) => a.slots[0]![0] - b.slots[0]![0])
      .map((n) => byPort(n.port));

  const healthy = async (): Promise<true | undefined> => {
    for (const node of live()) {
      const info = await redisCli(node.port, ['CLUSTER', 'INFO']);
      if (infoField(info, 'cluster_state') !== 'ok' || infoField(info, 'cluster_slots_ok') !== '16384') return undefined;
      if (Number(infoField(info, 'cluster_known_nodes')) !== nodes.length) return undefined;
    }
    return true;
  };

  const cluster: RedisCluster = {
    nodes,
    startupNodes: ports.map((port) => ({ host: '127.0.0.1', port })),
    masters: liveMasters,
    async replicasOf(master) {
      const all = await view();
      const id = all.find((n) => n.port === master.port)?.id;
      return all.filter((n) => n.masterId === id && !n.flags.some((f) => f.startsWith('fail'))).map((n) => byPort(n.port));
    },
    async nodeForKey(key) {
      const slot = Number(await redisCli(live()[0]!.port, ['CLUSTER', 'KEYSLOT', key]));
      const owner = (await view()).find(
        (n) => n.flags.includes('master') && !n.flags.some((f) => f.startsWith('fail')) && n.slots.some(([a, b]) => slot >= a && slot <= b),
      );
      if (!owner) throw new Error(`no live master serves slot ${slot} (key ${key})`);
      return byPort(owner.port);
    },
    async killMaster(i, signal = 'SIGKILL') {
      const current = await liveMasters();
      const node = current[i];
      if (!node) throw new Error(`killMaster(${i}): there are ${current.length} live masters`);
      await node.kill(signal);
      return node;
    },
    async waitForFailover(killed, timeoutMs = 20_000) {
      return until('Redis Cluster failover', async () => {
        if (!(await healthy())) return undefined;
        const current = await liveMasters();
        if (killed && current.includes(killed)) return undefined;
        const covered = (await view())
          .filter((n) => current.some((m) => m.port === n.port))
          .reduce((sum, n) => sum + n.slots.reduce((s, [a, b]) => s + b - a + 1, 0), 0);
        if (covered !== 16_384) return undefined;
        return current;
      }, timeoutMs, 100);
    },
    async waitForReplication(timeoutMs = 10_000) {
      await until('Redis Cluster replication caught up', async () => {
        const all = await view();
        for (const master of all.filter((n) => n.flags.includes('master') && !n.flags.some((f) => f.startsWith('fail')))) {
          const expected = all.filter((n) => n.masterId === master.id && !n.flags.some((f) => f.startsWith('fail'))).length;
          const info = await redisCli(master.port, ['INFO', 'replication']);
          const offset = infoField(info, 'master_repl_offset');
          const acked = [...info.matchAll(/^slave\d+:.*state=online.*offset=(\d+)/gm)].map((m) => m[1]);
          if (acked.length < expected || acked.some((o) => o !== offset)) return undefined;
        }
        return true;
      }, timeoutMs, 100);
    },
    async waitForHealthy(timeoutMs = 20_000) {
      await until('Redis Cluster cluster_state:ok on every node', healthy, timeoutMs, 100);
    },
    async close() {
      await Promise.all(servers.map((s) => s.close()));
    },
  };

  try {
    await redisCli(
      ports[0]!,
      ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes'],
      60_000,
    );
    await cluster.waitForHealthy(30_000);
    await until('Redis Cluster replicas attached', async () => {
      const all = await view();
      return all.filter((n) => n.flags.includes('slave')).length === masters * replicas ? true : undefined;
    }, 30_000, 100);
    // Each replica must be attached (known to its master) before a test may rely on failover.
    await cluster.waitForReplication(30_000);
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}
