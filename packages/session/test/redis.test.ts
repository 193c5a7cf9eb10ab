import { Redis } from 'ioredis';
import { startRedis } from '@cluster-session/testkit';
import { conformance } from './conformance.ts';

conformance('redis', async () => {
  // AOF on, so a restart keeps the data, as a production Redis would. No fsync per write: the file gets each write
  // before the reply, which is all a process restart needs, and a busy disk's fsync latency would trip the timeout.
  const server = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'no'] });
  const admin = new Redis(server.url, { lazyConnect: false, maxRetriesPerRequest: 1, retryStrategy: () => 200 });
  admin.on('error', () => {});
  return {
    store: { type: 'redis', url: server.url },
    multiProcess: true,
    async expiryOf(_served, sid) {
      const ms = await admin.pttl(`sess:${sid}`);
      return ms > 0 ? Date.now() + ms : undefined;
    },
    async corrupt(_served, sid) {
      await admin.set(`sess:${sid}`, '{"cookie": not json', 'KEEPTTL');
    },
    outage: { stop: () => server.stop(), start: () => server.start(), failing: 'read' },
    restart: {
      persistent: true,
      async run() {
        await server.stop();
        await server.start();
      },
    },
    async close() {
      admin.disconnect();
      await server.close();
    },
  };
});
