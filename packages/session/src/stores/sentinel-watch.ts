import type * as Ioredis from 'ioredis';
import type { RedisTarget } from './redis-url.ts';

type Sentinel = Extract<RedisTarget, { kind: 'sentinel' }>;

/**
 * Follows a Sentinel failover for `client`. A master cut off by a partition never closes its connections, so the
 * client would keep waiting on it long after a replica was promoted: this subscribes to `+switch-master` on every
 * configured sentinel and, when one announces a new master for the deployment that is not the one the client is
 * connected to, drops the connection (the client then asks the sentinels again, at once).
 *
 * Used instead of ioredis' `failoverDetector`, which reconnects on each sentinel's announcement of the same
 * failover (every sentinel announces it, some seconds apart: each needless reconnect is a burst of 503s) and leaves
 * the errors of an unreachable sentinel unhandled (ioredis prints them on every failover). The watchers end with
 * the client.
 */
export function watchSentinels(ioredis: typeof Ioredis, client: Ioredis.Redis, t: Sentinel, storeTimeout: number, onError: (err: Error) => void): void {
  const watchers = t.sentinels.map(({ host, port }) => {
    const w = new ioredis.Redis({
      host,
      port,
      ...(t.sentinelUsername ? { username: t.sentinelUsername } : {}),
      ...(t.sentinelPassword !== undefined ? { password: t.sentinelPassword } : {}),
      ...(t.tls ? { tls: {} } : {}),
      connectTimeout: Math.max(storeTimeout, 1000),
      // A subscription has no requests to fail fast: keep trying, backing off to 2 s, and resubscribe.
      retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
      maxRetriesPerRequest: null,
      enableReadyCheck: false,
    });
    w.on('error', (err: Error) => onError(new Error(`sentinel ${host}:${port}: ${err.message}`)));
    w.on('message', (_channel: string, message: string) => {
      // "<master name> <old ip> <old port> <new ip> <new port>"
      const [name, , , ip, newPort] = message.split(' ');
      if (name !== t.name) return;
      const s = client.stream as { remoteAddress?: string; remotePort?: number } | undefined;
      const connectedTo = s?.remoteAddress?.replace(/^::ffff:/, '');
      if (client.status === 'ready' && connectedTo === ip && s?.remotePort === Number(newPort)) return;
      if (client.status === 'ready' || client.status === 'connect') client.disconnect(true);
    });
    w.subscribe('+switch-master').catch((err: Error) => onError(new Error(`sentinel ${host}:${port}: ${err.message}`)));
    return w;
  });
  client.once('end', () => {
    for (const w of watchers) w.disconnect();
  });
}
