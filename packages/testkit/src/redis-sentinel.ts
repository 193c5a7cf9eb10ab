import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from './ports.ts';
import { startProcess, type Proc } from './process.ts';
import { redisCli } from './redis-cluster.ts';
import { until } from './wait.ts';
import { startRedis, type RedisServer } from './redis.ts';

export interface RedisSentinelOptions {
  /** Sentinels that must agree the master is down before a failover. Default 2. */
  quorum?: number;
  /** Number of sentinels. Default 3. */
  sentinels?: number;
  /** Number of replicas. Default 1. */
  replicas?: number;
  masterName?: string;
  /** `down-after-milliseconds`: how long the master may be silent before it is considered down. Default 1000. */
  downAfterMs?: number;
  /** `failover-timeout`. Default 5000. */
  failoverTimeoutMs?: number;
  /** Extra `redis-server` arguments for master and replicas, e.g. ['--appendonly', 'yes']. */
  args?: readonly string[];
}

export interface SentinelProcess {
  readonly host: string;
  readonly port: number;
  readonly proc: Proc;
}

export interface RedisSentinel {
  readonly masterName: string;
  /** Master first, then replicas, in start order (roles change with failovers: ask master()). */
  readonly servers: readonly RedisServer[];
  /** Seed list for `new Redis({ sentinels, name: masterName })`. */
  readonly sentinels: Array<{ host: string; port: number }>;
  readonly sentinelProcs: readonly SentinelProcess[];
  /** The server the sentinels name as master now. */
  master(): Promise<RedisServer>;
  /** Kills the current master (SIGKILL by default) and returns it. */
  killMaster(signal?: NodeJS.Signals): Promise<RedisServer>;
  /**
   * Waits until every sentinel names a master other than `old`, and that server says role:master.
   * Resolves with the promoted server.
   */
  waitForFailover(old: RedisServer, timeoutMs?: number): Promise<RedisServer>;
  /** Waits until every replica has acknowledged the master's replication offset (so a kill loses nothing). */
  waitForReplication(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

function infoField(info: string, field: string): string | undefined {
  return info.match(new RegExp(`^${field}:(.*)$`, 'm'))?.[1]?.trim();
}

/** Sentinel replies to SENTINEL MASTER as alternating field/value lines. */
function fields(text: string): Record<string, string> {
  const lines = text.split('\n');
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < lines.length; i += 2) out[lines[i]!.trim()] = lines[i + 1]!.trim();
  return out;
}

/**
 * A real Redis Sentinel deployment on 127.0.0.1: one master, `replicas` replicas and `sentinels` sentinel
 * processes (`redis-server <conf> --sentinel`) with short detection timeouts. Resolves once every sentinel knows
 * the replicas and the other sentinels, so a failover can actually happen.
 */
export async function startRedisSentinel(options: RedisSentinelOptions = {}): Promise<RedisSentinel> {
  const quorum = options.quorum ?? 2;
  const count = options.sentinels ?? 3;
  const replicaCount = options.replicas ?? 1;
  const masterName = options.masterName ?? 'mymaster';
  if (quorum < 1 || quorum > count) throw new Error(`startRedisSentinel: quorum must be 1..${count}, got ${quorum}`);

  const master = await startRedis({ args: options.args ?? [] });
  const servers: RedisServer[] = [master];
  const procs: SentinelProcess[] = [];
  const dirs: string[] = [];
  const close = async () => {
    await Promise.all(procs.map((s) => s.proc.stop('SIGKILL')));
    await Promise.all(servers.map((s) => s.close()));
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  };

  try {
    for (let i = 0; i < replicaCount; i++) {
      servers.push(await startRedis({ args: [...(options.args ?? []), '--replicaof', '127.0.0.1', String(master.port)] }));
    }
    // Sentinels discover replicas from the master's INFO: start them once the replicas are attached.
    await until('replicas attached to the master', async () => {
      const info = await redisCli(master.port, ['INFO', 'replication']);
      return Number(infoField(info, 'connected_slaves')) === replicaCount ? true : undefined;
    }, 10_000, 100);

    for (let i = 0; i < count; i++) {
      const dir = mkdtempSync(path.join(tmpdir(), 'cs-sentinel-'));
      dirs.push(dir);
      const port = await freePort();
      const conf = path.join(dir, 'sentinel.conf');
      // Sentinel rewrites this file as it learns the topology, so it lives in a writable temp dir.
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${master.port} ${quorum}`,
          `sentinel down-after-milliseconds ${masterName} ${options.downAfterMs ?? 1_000}`,
          `sentinel failover-timeout ${masterName} ${options.failoverTimeoutMs ?? 5_000}`,
          `sentinel parallel-syncs ${masterName} 1`,
          '',
        ].join('\n'),
      );
      const proc = startProcess(process.env.REDIS_SERVER ?? 'redis-server', [conf, '--sentinel']);
      procs.push({ host: '127.0.0.1', port, proc });
      await Promise.race([
        waitForPort(port),
        proc.exited.then((code) => {
          throw new Error(`redis sentinel exited (${code}):\n${proc.output()}`);
        }),
      ]);
    }
    // A failover needs each sentinel to know the replicas and enough peers to reach quorum and majority.
    await until('sentinels know the replicas and each other', async () => {
      for (const s of procs) {
        const m = fields(await redisCli(s.port, ['SENTINEL', 'MASTER', masterName]));
        if (Number(m['num-slaves']) !== replicaCount || Number(m['num-other-sentinels']) !== count - 1) return undefined;
      }
      return true;
    }, 20_000, 100);
  } catch (err) {
    await close();
    throw err;
  }

  const live = () => procs.filter((s) => s.proc.child.exitCode === null && s.proc.child.signalCode === null);
  const masterPort = async (s: SentinelProcess) =>
    Number((await redisCli(s.port, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName])).split('\n')[1]);
  const byPort = (port: number) => {
    const server = servers.find((s) => s.port === port);
    if (!server) throw new Error(`sentinels name an unknown master on port ${port}`);
    return server;
  };

  const deployment: RedisSentinel = {
    masterName,
    servers,
    sentinels: procs.map(({ host, port }) => ({ host, port })),
    sentinelProcs: procs,
    async master() {
      return byPort(await masterPort(live()[0]!));
    },
    async killMaster(signal = 'SIGKILL') {
      const current = await deployment.master();
      await current.stop(signal);
      return current;
    },
    async waitForFailover(old, timeoutMs = 20_000) {
      return until('Redis Sentinel failover', async () => {
        const ports = await Promise.all(live().map(masterPort));
        if (ports.some((p) => p === old.port || p !== ports[0])) return undefined;
        const promoted = byPort(ports[0]!);
        const role = infoField(await redisCli(promoted.port, ['INFO', 'replication']), 'role');
        return role === 'master' ? promoted : undefined;
      }, timeoutMs, 100);
    },
    async waitForReplication(timeoutMs = 10_000) {
      await until('Redis Sentinel replication caught up', async () => {
        const current = await deployment.master();
        const info = await redisCli(current.port, ['INFO', 'replication']);
        const offset = infoField(info, 'master_repl_offset');
        const acked = [...info.matchAll(/^slave\d+:.*state=online.*offset=(\d+)/gm)].map((m) => m[1]);
        const attached = Number(infoField(info, 'connected_slaves'));
        return acked.length === attached && acked.every((o) => o === offset) ? true : undefined;
      }, timeoutMs, 100);
    },
    close,
  };
  return deployment;
}
