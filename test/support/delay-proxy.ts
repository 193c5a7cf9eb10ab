/**
 * A small TCP delay proxy (the kernel here has no netem): run inside an app host's namespace, where nftables
 * redirects that host's connections to the Redis hosts to it. Every chunk the app sends is held `delay` ms
 * before it is forwarded (order kept, no rate limit), so each round trip to Redis takes `delay` ms longer; the
 * answers come back at once. `delay N` on stdin changes it for every open connection; the proxy prints
 * `delay N` back once applied. Its own upstream connections leave from `--from`, an address the redirect rule
 * skips, so they are not redirected to itself.
 *
 *   node delay-proxy.ts --from 10.219.0.121 16011=10.219.0.11:6379 16012=10.219.0.12:6379 ...
 */
import net from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ options: { from: { type: 'string' } }, allowPositionals: true });
let delay = 0;

function pipeDelayed(from: net.Socket, to: net.Socket): void {
  const queue: Array<{ at: number; chunk: Buffer }> = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    const now = Date.now();
    while (queue.length && queue[0]!.at <= now) to.write(queue.shift()!.chunk);
    if (queue.length) timer = setTimeout(flush, queue[0]!.at - now);
  };
  from.on('data', (chunk: Buffer) => {
    if (delay === 0 && queue.length === 0) return void to.write(chunk);
    queue.push({ at: Date.now() + delay, chunk });
    timer ??= setTimeout(flush, delay);
  });
  from.on('end', () => {
    // Half-close only after what is still held has gone out.
    const done = () => (queue.length ? setTimeout(done, 5) : to.end());
    done();
  });
}

const servers = positionals.map((route) => {
  const [listen, target] = route.split('=');
  const [host, port] = target!.split(':');
  const server = net.createServer((client) => {
    client.setNoDelay(true);
    const upstream = net.connect({ host: host!, port: Number(port), localAddress: values.from, noDelay: true });
    pipeDelayed(client, upstream);
    upstream.pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  return new Promise<void>((resolve) => server.listen(Number(listen), '127.0.0.1', resolve));
});
await Promise.all(servers);
console.log('ready');

createInterface({ input: process.stdin }).on('line', (line) => {
  const m = /^delay (\d+)$/.exec(line.trim());
  if (!m) return void console.log(`unknown command: ${line}`);
  delay = Number(m[1]);
  console.log(`delay ${delay}`);
});
process.stdin.on('end', () => process.exit(0));
