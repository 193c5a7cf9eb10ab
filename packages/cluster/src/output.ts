import type { Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

/**
 * Copies a worker's stream to `dest` line by line, each line prefixed with its slot and pid, so the output of
 * many workers interleaves by whole lines and every line says who wrote it. A partial last line is flushed when
 * the stream ends.
 */
export function pipeLines(source: Readable, dest: Writable, prefix: string): void {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  source.on('data', (chunk: Buffer) => {
    pending += decoder.write(chunk);
    const last = pending.lastIndexOf('\n');
    if (last === -1) {
      // A runaway line without newlines must not grow without bound.
      if (pending.length > 64 * 1024) {
        dest.write(`${prefix}${pending}\n`);
        pending = '';
      }
      return;
    }
    const lines = pending.slice(0, last).split('\n');
    pending = pending.slice(last + 1);
    dest.write(lines.map((line) => `${prefix}${line}\n`).join(''));
  });
  source.on('end', () => {
    pending += decoder.end();
    if (pending) dest.write(`${prefix}${pending}\n`);
    pending = '';
  });
}
