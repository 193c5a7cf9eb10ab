/**
 * A minimal WebSocket client for tests (RFC 6455 over a raw socket; text frames up to 64 KiB): enough to prove
 * the balancer proxies the upgrade and the frames both ways, without a dependency.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';

export function encodeFrame(text: string, mask: boolean, opcode = 1): Buffer {
  const payload = Buffer.from(text);
  const len = payload.length;
  const header = Buffer.alloc(len < 126 ? 2 : 4);
  header[0] = 0x80 | opcode;
  if (len < 126) header[1] = len;
  else {
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  }
  if (!mask) return Buffer.concat([header, payload]);
  header[1]! |= 0x80;
  const key = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ key[i % 4]!));
  return Buffer.concat([header, key, masked]);
}

export function decodeFrame(buf: Buffer): { opcode: number; text: string; length: number } | undefined {
  if (buf.length < 2) return undefined;
  const opcode = buf[0]! & 0x0f;
  const masked = (buf[1]! & 0x80) !== 0;
  let len = buf[1]! & 0x7f;
  let offset = 2;
  if (len === 126) {
    if (buf.length < 4) return undefined;
    len = buf.readUInt16BE(2);
    offset = 4;
  }
  const keyAt = offset;
  if (masked) offset += 4;
  if (buf.length < offset + len) return undefined;
  let payload = buf.subarray(offset, offset + len);
  if (masked) payload = Buffer.from(payload.map((b, i) => b ^ buf[keyAt + (i % 4)]!));
  return { opcode, text: payload.toString(), length: offset + len };
}

export interface WsClient {
  /** Response head of the handshake (status line and headers). */
  readonly head: string;
  send(text: string): Promise<string>;
  /** True once the connection is gone (closed by either side). */
  closed(): boolean;
  close(): void;
}

/** Opens a WebSocket to `url`'s host:port and path; resolves after the 101, rejects on any other answer. */
export function connectWs(url: string, headers: Record<string, string> = {}): Promise<WsClient> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port), u.hostname);
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(
      `GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
    );
    let buf = Buffer.alloc(0);
    let head = '';
    let waiting: ((text: string) => void) | undefined;
    let failWaiting: ((err: Error) => void) | undefined;
    let closed = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no WebSocket handshake within 5 s'));
    }, 5_000);
    socket.on('error', reject);
    socket.on('close', () => {
      closed = true;
      failWaiting?.(new Error('connection closed'));
    });
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!head) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        head = buf.subarray(0, end).toString('latin1');
        buf = buf.subarray(end + 4);
        clearTimeout(timer);
        if (!head.startsWith('HTTP/1.1 101')) {
          socket.destroy();
          return reject(new Error(`handshake refused: ${head.split('\r\n')[0]}`));
        }
        resolve({
          head,
          send(text) {
            return new Promise((res, rej) => {
              if (closed) return rej(new Error('connection closed'));
              const t = setTimeout(() => rej(new Error('no WebSocket reply within 5 s')), 5_000);
              failWaiting = (err) => {
                clearTimeout(t);
                rej(err);
              };
              waiting = (v) => {
                clearTimeout(t);
                res(v);
              };
              socket.write(encodeFrame(text, true));
            });
          },
          closed: () => closed,
          close() {
            socket.end(encodeFrame('', true, 8));
            setTimeout(() => socket.destroy(), 200).unref();
          },
        });
      }
      for (;;) {
        const frame = decodeFrame(buf);
        if (!frame) return;
        buf = buf.subarray(frame.length);
        if (frame.opcode === 1 && waiting) {
          const w = waiting;
          waiting = undefined;
          w(frame.text);
        }
      }
    });
  });
}
