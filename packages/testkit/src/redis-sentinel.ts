import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from './ports.ts';
import { startProcess, type Proc } from './process.ts';
import { redisCli, type NetnsHost } from './redis-cluster.ts';
import { until } from './wait.ts';
import { startRedis, type RedisAddress, type RedisServer } from './redis.ts';

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
  /**
   * Spread the deployment over these hosts: the master on hosts[0], replica i on hosts[i % n], sentinel i on
   * hosts[i % n] (Redis from port 6379, sentinels from 26379 on each). Default: all on 127.0.0.1, free ports.
   */
  hosts?: readonly NetnsHost[];
  /** requirepass/masterauth on master and replicas (the sentinels get `sentinel auth-pass`). */
  password?: string;
}

export interface SentinelProcess {
  readonly host: string;
  readonly port: number;
  readonly address: RedisAddress;
  readonly proc: Proc;
}

export interface RedisSentinel {
  readonly masterName: string;
  /** Master first, then replicas, in start order (roles change with failovers: ask master()). */
  readonly servers: readonly RedisServer[];
  /** Seed list for `new Redis({ sentinels, name: masterName })`. */
  readonly sentinels: Array<{ host: string; port: number }>;
  readonly sentinelProcs: readonly SentinelProcess[];
  /** The server the sentinels (those `among`, default every live one) name as master now. */
  master(among?: (s: SentinelProcess) => boolean): Promise<RedisServer>;
  /** Kills the current master (SIGKILL by default) and returns it. */
  killMaster(signal?: NodeJS.Signals): Promise<RedisServer>;
  /**
   * Waits until every sentinel (`among` them: e.g. those on this side of a partition) names a master other than
   * `old`, and that server says role:master. Resolves with the promoted server.
   */
  waitForFailover(old: RedisServer, timeoutMs?: number, among?: (s: SentinelProcess) => boolean): Promise<RedisServer>;
  /**
   * Waits until every replica has acknowledged the master's replication offset as it was when called (so a kill
   * loses nothing written before).
   */
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
 * A real Redis Sentinel deployment: one master, `replicas` replicas and `sentinels` sentinel processes
 * (`redis-server <conf> --sentinel`) with short detection timeouts, on 127.0.0.1 or spread over network
 * namespaces (`hosts`). Resolves once every sentinel knows the replicas and the other sentinels, so a failover can
 * actually happen.
 */
export async function startRedisSentinel(options: RedisSentinelOptions = {}): Promise<RedisSentinel> {
  const quorum = options.quorum ?? 2;
  const count = options.sentinels ?? 3;
  const replicaCount = options.replicas ?? 1;
  const masterName = options.masterName ?? 'mymaster';
  const hosts = options.hosts?.length ? options.hosts : undefined;
  if (quorum < 1 || quorum > count) throw new Error(`startRedisSentinel: quorum must be 1..${count}, got ${quorum}`);

  // Per host, the next free Redis and Sentinel port (a namespace has them all free).
  const used = new Map<string, number>();
  const place = async (i: number, base: number) => {
    if (!hosts) return { port: await freePort() };
    const host = hosts[i % hosts.length]!;
    const key = `${host.netns}/${base}`;
    const port = base + (used.get(key) ?? 0);
    used.set(key, (used.get(key) ?? 0) + 1);
    return { port, host };
  };
  const redis = async (i: number, extra: readonly string[]) => {
    const { port, host } = await place(i, 6379);
    return startRedis({
      port,
      // A replica's first sync starts at once rather than after Redis' default 5 s diskless-sync delay.
      args: ['--repl-diskless-sync-delay', '0', ...(options.args ?? []), ...extra],
      ...(host ? { netns: host.netns, host: host.address } : {}),
      ...(options.password ? { password: options.password } : {}),
    });
  };

  const master = await redis(0, []);
  const servers: RedisServer[] = [master];
  const procs: SentinelProcess[] = [];
  const dirs: string[] = [];
  const close = async () => {
    await Promise.all(procs.map((s) => s.proc.stop('SIGKILL')));
    await Promise.all(servers.map((s) => s.close()));
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  };

  try {
    for (let i = 1; i <= replicaCount; i++) servers.push(await redis(i, ['--replicaof', master.host, String(master.port)]));
    // Sentinels discover replicas from the master's INFO: start them once the replicas are attached and in sync
    // (until its first sync a replica acknowledges nothing: WAIT and failovers would not see it).
    await until('replicas attached to the master and in sync', async () => {
      const info = await redisCli(master.address, ['INFO', 'replication']);
      const online = [...info.matchAll(/^slave\d+:.*state=online/gm)].length;
      return Number(infoField(info, 'connected_slaves')) === replicaCount && online === replicaCount ? true : undefined;
    }, 20_000, 100);

    for (let i = 0; i < count; i++) {
      const dir = mkdtempSync(path.join(tmpdir(), 'cs-sentinel-'));
      dirs.push(dir);
      const { port, host } = await place(i, 26379);
      const address = host?.address ?? '127.0.0.1';
      const conf = path.join(dir, 'sentinel.conf');
      // Sentinel rewrites this file as it learns the topology, so it lives in a writable temp dir.
      writeFileSync(
        conf,
        [
          `port ${port}`,
          `bind ${address === '127.0.0.1' ? '127.0.0.1' : `${address} 127.0.0.1`}`,
          ...(host ? ['protected-mode no'] : []),
          `dir ${dir}`,
          `sentinel monitor ${masterName} ${master.host} ${master.port} ${quorum}`,
          `sentinel down-after-milliseconds ${masterName} ${options.downAfterMs ?? 1_000}`,
          `sentinel failover-timeout ${masterName} ${options.failoverTimeoutMs ?? 5_000}`,
          `sentinel parallel-syncs ${masterName} 1`,
          ...(options.password ? [`sentinel auth-pass ${masterName} ${options.password}`] : []),
          '',
        ].join('\n'),
      );
      const proc = startProcess(process.env.REDIS_SERVER ?? 'redis-server', [conf, '--sentinel'], { netns: host?.netns });
      procs.push({ host: address, port, address: { host: address, port, ...(host ? { netns: host.netns } : {}) }, proc });
      await Promise.race([
        host ? proc.waitFor(/Sentinel ID is/, 10_000) : waitForPort(port),
        proc.exited.then((code) => {
          throw new Error(`redis sentinel exited (${code}):\n${proc.output()}`);
        }),
      ]);
    }
    // A failover needs each sentinel to know the replicas and enough peers to reach quorum and majority.
    await until('sentinels know the replicas and each other', async () => {
      for (const s of procs) {
        const m = fields(await redisCli(s.address, ['SENTINEL', 'MASTER', masterName]));
        if (Number(m['num-slaves']) !== replicaCount || Number(m['num-other-sentinels']) !== count - 1) return undefined;
      }
      return true;
    }, 20_000, 100);
  } catch (err) {
    await close();
    throw err;
  }

  const live = (among: (s: SentinelProcess) => boolean = () => true) =>
    procs.filter((s) => s.proc.child.exitCode === null && s.proc.child.signalCode === null && among(s));
  const masterAddr = async (s: SentinelProcess) => {
    const [host, port] = (await redisCli(s.address, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName])).split('\n');
    return { host: host!.trim(), port: Number(port) };
  };
  const byAddr = ({ host, port }: { host: string; port: number }) => {
    const server = servers.find((s) => s.port === port && s.host === host);
    if (!server) throw new Error(`sentinels name an unknown master ${host}:${port}`);
    return server;
  };

  const deployment: RedisSentinel = {
    masterName,
    servers,
    sentinels: procs.map(({ host, port }) => ({ host, port })),
    sentinelProcs: procs,
    async master(among) {
      return byAddr(await masterAddr(live(among)[0]!));
    },
    async killMaster(signal = 'SIGKILL') {
      const current = await deployment.master();
      await current.stop(signal);
      return current;
    },
    async waitForFailover(old, timeoutMs = 20_000, among) {
      return until('Redis Sentinel failover', async () => {
        const named = (await Promise.all(live(among).map(masterAddr))).map(byAddr);
        if (named.some((s) => s === old || s !== named[0])) return undefined;
        const role = infoField(await redisCli(named[0]!.address, ['INFO', 'replication']), 'role');
        return role === 'master' ? named[0] : undefined;
      }, timeoutMs, 100);
    },
    async waitForReplication(timeoutMs = 10_000) {
      // Caught up with what was written before this call: under load the master's offset keeps moving.
      const current = await deployment.master();
      const target = Number(infoField(await redisCli(current.address, ['INFO', 'replication']), 'master_repl_offset'));
      await until('Redis Sentinel replication caught up', async () => {
        const info = await redisCli(current.address, ['INFO', 'replication']);
        const acked = [...info.matchAll(/^slave\d+:.*state=online.*offset=(\d+)/gm)].map((m) => Number(m[1]));
        const attached = Number(infoField(info, 'connected_slaves'));
        return acked.length === attached && acked.every((o) => o >= target) ? true : undefined;
      }, timeoutMs, 100);
    },
    close,
  };
  return deployment;
}
