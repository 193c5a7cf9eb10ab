import type { Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

/** How the primary writes worker lines and its own: `text` (timestamped, prefixed) or `json` (one object a line). */
export type LogFormat = 'text' | 'json';

/** pino's level numbers: a worker's stdout line is info, its stderr line error, unless the line says otherwise. */
const INFO = 30;
const ERROR = 50;

/**
 * Turns one line a worker wrote into the line the primary writes. `text`: `<ISO time> [slot N pid P] line`.
 * `json`: a line that already is a JSON object (pino, bunyan, winston's json) keeps every field it has, gains
 * `slot` and `pid`, and `time` (epoch ms, as pino writes it) unless it has one; any other line becomes
 * `{"level","time","slot","pid","msg"}`, so a log shipper reads one JSON object per line, never a string in one.
 */
export function workerLine(format: LogFormat, slot: number, pid: number, stream: 'stdout' | 'stderr'): (line: string) => string {
  if (format === 'text') {
    const prefix = ` [slot ${slot} pid ${pid}] `;
    return (line) => `${new Date().toISOString()}${prefix}${line}`;
  }
  const level = stream === 'stderr' ? ERROR : INFO;
  return (line) => {
    // Only a line that looks like an object pays for a parse; JSON.parse is the one strict judge of "is JSON".
    if (line.charCodeAt(0) === 123 /* { */) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = undefined;
      }
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
        return JSON.stringify({ time: Date.now(), ...(parsed as Record<string, unknown>), slot, pid });
      }
    }
    return JSON.stringify({ level, time: Date.now(), slot, pid, msg: line });
  };
}

/** The primary's own message as a line: timestamped text, or a pino-shaped object naming the cluster. */
export function primaryLine(format: LogFormat, name: string): (message: string) => string {
  if (format === 'text') return (message) => `${new Date().toISOString()} [cluster-session ${name}] ${message}`;
  return (message) => JSON.stringify({ level: INFO, time: Date.now(), pid: process.pid, name: 'cluster-session', cluster: name, msg: message });
}

/**
 * Copies a worker's stream to `dest` line by line, each line rewritten by `format`, so the output of many
 * workers interleaves by whole lines and every line says who wrote it. A partial last line is flushed when the
 * stream ends.
 */
export function pipeLines(source: Readable, dest: Writable, format: (line: string) => string): void {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  source.on('data', (chunk: Buffer) => {
    pending += decoder.write(chunk);
    const last = pending.lastIndexOf('\n');
    if (last === -1) {
      // A runaway line without newlines must not grow without bound.
      if (pending.length > 64 * 1024) {
        dest.write(`${format(pending)}\n`);
        pending = '';
      }
      return;
    }
    const lines = pending.slice(0, last).split('\n');
    pending = pending.slice(last + 1);
    dest.write(lines.map((line) => `${format(line)}\n`).join(''));
  });
  source.on('end', () => {
    pending += decoder.end();
    if (pending) dest.write(`${format(pending)}\n`);
    pending = '';
  });
}
