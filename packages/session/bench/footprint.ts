/**
 * What @cluster-session/session costs a worker: the example app's server (examples/express-app/src/server.ts, SQLite
 * by default) run alone, its RSS once it listens and the time from spawn until its port accepts.
 *
 *   node --conditions=@cluster-session/source packages/session/bench/footprint.ts [--runs 7] [--compare <git ref>]
 *
 * --compare also runs this package's src/ as of <ref> (extracted with `git archive` next to this file, so its
 * imports resolve the same node_modules), alternating the two, and prints both medians.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '@cluster-session/testkit';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' }, compare: { type: 'string' } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error(`--runs ${values.runs}: expected an integer from 1 to 50`);

const pkg = path.resolve(import.meta.dirname, '..');
const server = path.resolve(pkg, '../../examples/express-app/src/server.ts');
const cwd = mkdtempSync(path.join(tmpdir(), 'cs-footprint-'));

/** A --import hook sending '@cluster-session/session' to `src` (the same hook for both trees, so both pay it). */
const redirect = (src: string) =>
  'data:text/javascript,' +
  encodeURIComponent(
    `import { registerHooks } from 'node:module';
     const target = ${JSON.stringify(new URL(`file://${src}/index.ts`).href)};
     registerHooks({ resolve: (s, c, next) => next(s === '@cluster-session/session' ? target : s, c) });`,
  );

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1', () => (s.destroy(), resolve(true))).on('error', () => resolve(false));
  });

async function once(src: string): Promise<{ rssMB: number; startMs: number }> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--conditions=@cluster-session/source', '--import', redirect(src), server], {
    cwd,
    env: { ...process.env, PORT: String(port), SESSION_SECRET: 'footprint-bench-secret-0123456789', NODE_ENV: 'development' },
    stdio: 'ignore',
  });
  try {
    const deadline = t0 + 20_000;
    while (!(await accepts(port))) {
      if (performance.now() > deadline || child.exitCode !== null) throw new Error(`the server did not listen on ${port}`);
      await sleep(10);
    }
    const startMs = performance.now() - t0;
    await sleep(500); // let startup settle before reading RSS
    const rssKB = Number(execFileSync('ps', ['-o', 'rss=', '-p', String(child.pid)], { encoding: 'utf8' }).trim());
    return { rssMB: rssKB / 1024, startMs };
  } finally {
    child.kill('SIGKILL');
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const trees: Array<[string, string]> = [['now', path.join(pkg, 'src')]];
let before: string | undefined;
if (values.compare) {
  before = mkdtempSync(path.join(pkg, '.footprint-'));
  execFileSync('sh', ['-c', `git -C "${pkg}" archive "$1" src | tar -x -C "${before}"`, 'sh', values.compare]);
  trees.unshift([values.compare, path.join(before, 'src')]);
}
try {
  const results = new Map(trees.map(([name]) => [name, { rss: [] as number[], start: [] as number[] }]));
  for (let i = 0; i < runs; i++) {
    for (const [name, src] of trees) {
      const r = await once(src);
      results.get(name)!.rss.push(r.rssMB);
      results.get(name)!.start.push(r.startMs);
    }
  }
  for (const [name, r] of results) {
    console.log(`${name.padEnd(12)} RSS ${median(r.rss).toFixed(0)} MB, listening after ${median(r.start).toFixed(0)} ms (median of ${runs})`);
  }
} finally {
  rmSync(cwd, { recursive: true, force: true });
  if (before) rmSync(before, { recursive: true, force: true });
}
