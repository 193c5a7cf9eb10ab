import net from 'node:net';
import { createBalancer, type Balancer, type CreateBalancerOptions } from '@cluster-session/balancer';
import { createInstance, type Instance } from './fixtures/instance.ts';

export { createInstance, type Instance };

/** A balancer on a free port with fast health checks, closed by the caller. */
export function balancer(options: Omit<CreateBalancerOptions, 'listen'> & { listen?: CreateBalancerOptions['listen'] }): Promise<Balancer> {
  return createBalancer({ listen: 0, ...options });
}

export function instances<const N extends readonly string[]>(...names: N): Promise<{ -readonly [K in keyof N]: Instance }> {
  return Promise.all(names.map((n) => createInstance(n))) as Promise<never>;
}

/**
 * Writes raw bytes to host:port and collects everything until the server closes the connection or nothing
 * arrives for `idleMs`. Resolves with the text and whether the server closed.
 */
export function raw(url: string, bytes: string | Buffer, idleMs = 1_000): Promise<{ text: string; closed: boolean }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port), u.hostname);
    let text = '';
    let timer = setTimeout(done, idleMs + 1_000);
    function done(closed = false) {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed });
    }
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      clearTimeout(timer);
      timer = setTimeout(done, idleMs);
    });
    socket.on('end', () => done(true));
    socket.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? done(true) : reject(err)));
  });
}

/** Status code of the first response in a raw answer. */
export function statusOf(text: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
}

export interface Exchange {
  /** Everything the balancer sent back. */
  bytes: Buffer;
  text: string;
  /** How it ended: 'end' (FIN), 'reset', or 'timeout' (it was still open after `timeoutMs`). */
  how: 'end' | 'reset' | 'timeout';
}

/**
 * One client connection, written as given and then half-closed (unless `keepOpen`), read until the balancer
 * closes it: it answers what it received, then closes, so no idle wait is needed to know the answer is complete.
 * `localAddress` picks the client address (any 127.x.y.z on Linux).
 */
export function exchange(url: string, bytes: string | Buffer, options: { keepOpen?: boolean; timeoutMs?: number; localAddress?: string } = {}): Promise<Exchange> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ port: Number(u.port), host: u.hostname, localAddress: options.localAddress });
    const chunks: Buffer[] = [];
    const done = (how: Exchange['how']) => {
      clearTimeout(timer);
      socket.destroy();
      const all = Buffer.concat(chunks);
      resolve({ bytes: all, text: all.toString('latin1'), how });
    };
    const timer = setTimeout(() => done('timeout'), options.timeoutMs ?? 5_000);
    socket.on('connect', () => {
      socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
      if (!options.keepOpen) socket.end();
    });
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => done('end'));
    socket.on('error', () => done('reset'));
  });
}

/** The `code` of a balancer JSON answer in `text` ('' when there is none). */
export function codeOf(text: string): string {
  return /"code":"(CS_ERR_BALANCER_[A-Z_]+)"/.exec(text)?.[1] ?? '';
}
