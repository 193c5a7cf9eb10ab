import net from 'node:net';
import { isIP } from 'node:net';
import { answerFrom, rawAnswer } from '@cluster-session/core';
import { ClusterNoWorkerError } from './errors.ts';

/**
 * The primary's side of sticky mode: it accepts every connection and hands the socket to the worker chosen for
 * the client's address, so a client keeps its worker (state in worker memory survives across its requests).
 */

/** Hands the socket to a worker; false when no worker can take it now. */
type Route = (key: string, socket: net.Socket, head: Buffer | undefined) => boolean;

interface StickyRouterOptions {
  port: number;
  host: string | undefined;
  trustProxy: boolean | readonly string[];
  route: Route;
}

// A proxy sends its request line and headers in the first packet or two; cap what we buffer waiting for them.
const MAX_HEAD = 16 * 1024;
const HEAD_TIMEOUT_MS = 5_000;

function normalizeAddress(address: string | undefined): string {
  if (!address) return 'unknown';
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/**
 * The client address from X-Forwarded-For, trusting only known proxies: walk the list from the right (the
 * entry our proxy appended) and skip addresses that are themselves trusted proxies. The leftmost entry is
 * whatever the client claimed, so it is never trusted blindly.
 */
export function clientFromForwarded(head: string, peer: string, trustProxy: boolean | readonly string[]): string {
  const trusted = (addr: string) => trustProxy === true || (Array.isArray(trustProxy) && trustProxy.includes(addr));
  if (!trusted(peer)) return peer;
  const end = head.indexOf('\r\n\r\n');
  const headers = (end === -1 ? head : head.slice(0, end)).split('\r\n').slice(1);
  const hops: string[] = [];
  for (const line of headers) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === 'x-forwarded-for') {
      hops.push(...line.slice(colon + 1).split(',').map((s) => normalizeAddress(s.trim())).filter(Boolean));
    }
  }
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    if (trustProxy === true || !trusted(hop) || i === 0) return hop;
  }
  return peer;
}

/** Reads until the end of the first request's headers (or a cap) without consuming more than the socket gave. */
function readHead(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', finish);
      socket.off('error', finish);
      socket.pause();
      // pause() alone lets libuv keep reading into the stream buffer; stop the handle so no byte is read here
      // that the worker would never see, then take whatever was buffered.
      (socket as unknown as { _handle?: { readStop?: () => void } })._handle?.readStop?.();
      for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null; ) chunks.push(chunk);
      resolve(Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      // TLS (0x16) cannot be read here: hand over as is. Otherwise wait for the blank line ending the headers.
      if (chunks[0]![0] === 0x16 || size >= MAX_HEAD || Buffer.concat(chunks).includes('\r\n\r\n')) finish();
    };
    const timer = setTimeout(finish, HEAD_TIMEOUT_MS);
    socket.on('data', onData);
    socket.once('end', finish);
    socket.once('error', finish);
    socket.resume();
  });
}

// How long a refused connection that sent nothing yet may take to show its first bytes (HTTP or TLS).
const REFUSE_PEEK_MS = 2_000;
/** The answer to a plain-HTTP client no worker can take: the suite's JSON error answer (503, Retry-After: 1). */
const NO_WORKER = rawAnswer(answerFrom(new ClusterNoWorkerError('no worker is ready')), { close: true });

/**
 * No worker can take the connection: a plain-HTTP client gets a 503 it can understand, anything else a close.
 * Nothing read yet (no trustProxy): read the first bytes to tell HTTP from TLS; no worker will need them.
 */
export function refuse(socket: net.Socket, head: Buffer | undefined): void {
  if (socket.destroyed) return;
  if (head === undefined) {
    socket.setTimeout(REFUSE_PEEK_MS, () => socket.destroy());
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      refuse(socket, chunk);
    });
    socket.once('end', () => socket.destroy());
    socket.resume();
    return;
  }
  if (head.length > 0 && head[0] !== 0x16) {
    socket.end(NO_WORKER);
    // The rest of the request is never read; do not let it hold the socket open.
    socket.setTimeout(REFUSE_PEEK_MS, () => socket.destroy());
  } else {
    socket.destroy();
  }
}

export function createStickyRouter(options: StickyRouterOptions): net.Server {
  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    const peer = normalizeAddress(socket.remoteAddress);
    if (options.trustProxy === false) {
      if (!options.route(peer, socket, undefined)) refuse(socket, undefined);
      return;
    }
    void readHead(socket).then((head) => {
      if (socket.destroyed) return;
      const key = head.length > 0 && head[0] !== 0x16 ? clientFromForwarded(head.toString('latin1'), peer, options.trustProxy) : peer;
      if (!options.route(key, socket, head.length > 0 ? head : undefined)) refuse(socket, head);
    });
  });
  return server;
}
