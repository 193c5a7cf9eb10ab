import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface LoadOptions {
  connections: number;
  durationSec: number;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /**
   * A different X-Forwarded-For on every request, so that a sticky primary trusting the proxy sees many clients
   * (it keys on the first request of each connection) although every connection comes from 127.0.0.1.
   */
  varyForwardedFor?: boolean;
  /** A Cookie header picked at random for every request (many clients, each with its own login); wrk only. */
  cookies?: readonly string[];
  /** Force a generator; by default wrk when installed (lower client overhead), else autocannon from npm. */
  tool?: 'wrk' | 'autocannon';
}

export interface LoadResult {
  tool: 'wrk' | 'autocannon';
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Socket errors and timeouts: requests that got no HTTP answer at all. */
  errors: number;
  /** What `errors` were, as the generator counts them (wrk: connect, read, write, timeout); empty when none. */
  errorKinds: string;
  /** Answers outside 2xx/3xx. */
  non2xx: number;
}

/** A round's failures for a log line: their count, and what they were when there were any. */
export function failureSummary(r: LoadResult): string {
  const kinds = [r.errorKinds, r.non2xx ? `non-2xx/3xx ${r.non2xx}` : ''].filter(Boolean).join(', ');
  return `${r.errors + r.non2xx}${kinds ? ` (${kinds})` : ''}`;
}

let wrkPresent: boolean | undefined;
export function hasWrk(): boolean {
  if (wrkPresent === undefined) {
    try {
      execFileSync('wrk', ['--version'], { stdio: 'ignore' });
      wrkPresent = true;
    } catch (err) {
      // wrk --version exits 1 after printing its banner; only ENOENT means it is missing.
      wrkPresent = (err as NodeJS.ErrnoException).code !== 'ENOENT';
    }
  }
  return wrkPresent;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err || out}`))));
  });
}

const toMs = (value: string, unit: string) => Number(value) * ({ us: 0.001, ms: 1, s: 1000, m: 60_000 }[unit] ?? 1);

async function wrk(url: string, o: LoadOptions): Promise<LoadResult> {
  const args = ['-t', '1', '-c', String(o.connections), '-d', `${o.durationSec}s`, '--latency', '--timeout', '10s'];
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push('-H', `${k}: ${v}`);
  let script: string | undefined;
  if ((o.method && o.method !== 'GET') || o.varyForwardedFor || o.cookies) {
    // wrk sets method, body and per-request headers from a Lua script.
    let lua = `wrk.method = ${JSON.stringify(o.method ?? 'GET')}\n${o.body ? `wrk.body = ${JSON.stringify(o.body)}\n` : ''}`;
    if (o.varyForwardedFor) {
      lua += 'request = function()\n  wrk.headers["X-Forwarded-For"] = "10." .. math.random(0, 255) .. "." .. math.random(0, 255) .. "." .. math.random(1, 254)\n  return wrk.format()\nend\n';
    } else if (o.cookies) {
      // Cookie values are base64url, dots and '=': nothing a Lua string literal must escape but the quote itself.
      lua += `local cookies = {${o.cookies.map((c) => JSON.stringify(c)).join(',')}}\n`;
      lua += 'request = function()\n  wrk.headers["Cookie"] = cookies[math.random(#cookies)]\n  return wrk.format()\nend\n';
    }
    script = mkdtempSync(path.join(tmpdir(), 'cs-bench-wrk-'));
    writeFileSync(path.join(script, 'request.lua'), lua);
    args.push('-s', path.join(script, 'request.lua'));
  }
  let out: string;
  try {
    out = await run('wrk', [...args, url]);
  } finally {
    if (script) rmSync(script, { recursive: true, force: true });
  }
  const num = (re: RegExp) => Number(out.match(re)?.[1] ?? 0);
  const lat = (p: string) => {
    const m = out.match(new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)`, 'm'));
    return m ? toMs(m[1]!, m[2]!) : NaN;
  };
  // wrk prints this line only when there was a socket error; its timeouts are requests unanswered after --timeout.
  const sock = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  return {
    tool: 'wrk',
    requests: num(/(\d+) requests in/),
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50Ms: lat('50'),
    p99Ms: lat('99'),
    errors: sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    errorKinds: sock ? `socket errors: ${sock[0].slice('Socket errors: '.length)}` : '',
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
  };
}

async function autocannon(url: string, o: LoadOptions): Promise<LoadResult> {
  if (o.cookies) throw new Error('a cookie per request needs wrk (apt-get install wrk)');
  const bin = createRequire(import.meta.url).resolve('autocannon/autocannon.js');
  const args = [bin, '--json', '-c', String(o.connections), '-d', String(o.durationSec), '-t', '10'];
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push('-H', `${k}=${v}`);
  if (o.varyForwardedFor) args.push('-I', '-H', 'X-Forwarded-For=[<id>]');
  if (o.method) args.push('-m', o.method);
  if (o.body) args.push('-b', o.body);
  const r = JSON.parse(await run(process.execPath, [...args, url]));
  return {
    tool: 'autocannon',
    requests: r.requests.total,
    rps: r.requests.average,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    errors: r.errors + r.timeouts,
    errorKinds: r.errors + r.timeouts ? `errors ${r.errors}, timeouts ${r.timeouts}` : '',
    non2xx: r.non2xx,
  };
}

/** Drives `url` with a real load generator in its own process, so the generator never shares our event loop. */
export function load(url: string, options: LoadOptions): Promise<LoadResult> {
  const tool = options.tool ?? (hasWrk() ? 'wrk' : 'autocannon');
  return tool === 'wrk' ? wrk(url, options) : autocannon(url, options);
}
