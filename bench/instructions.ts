/**
 * `node --conditions=@cluster-session/source bench/instructions.ts [REV...]`: the balancer's user-space instructions
 * per proxied request, counted by valgrind's callgrind, for each git revision named (its `packages/`, built as an
 * install) and for this working tree, side by side.
 *
 * Why instructions and not seconds: on the 2-core VMs this project is measured on, the same build's CPU per request
 * moves by 30-50% between runs, so a change worth 5-10% cannot be told from the noise by wall clock or CPU time
 * (bench/ab.ts-style alternation included). Callgrind counts what the process executes: the same build gives the same
 * count within about 4% whatever else the machine does (57,055 to 59,209 over four runs of one build on an AMD EPYC
 * VM, two of them with --perf-basic-prof: repeat a difference under 5% with ROUNDS=2). It does not count the kernel
 * (system calls and loopback delivery are about 40% of the balancer's CPU), nor cache misses or stalls: it answers
 * "does this change execute less", and the wall-clock benches answer "is it faster".
 *
 * Method: two upstream processes (bench/fixtures/upstream.ts) run natively; the balancer runs under callgrind
 * (--smc-check=all-non-file, as V8 writes code it then runs). WARM requests first, so that V8 has compiled the hot
 * path, then the counters are zeroed (`callgrind_control -z`), COUNT requests run from 32 keep-alive connections
 * (autocannon, an exact count), and the counters are dumped (`callgrind_control -d`). Instructions per request =
 * the dump's total / COUNT. ROUNDS repeats each variant (a repeat shows the method's spread).
 *
 * Env: WARM (40000), COUNT (40000), ROUNDS (1). About 2.5 minutes per variant and round on these VMs.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startProcess, until, which, type Proc } from '@cluster-session/testkit';
import { startUpstreams } from './lib/balancer-js.ts';
import { builtFixture, installBuilt } from './lib/built.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const WARM = Number(process.env.WARM ?? 40_000);
const COUNT = Number(process.env.COUNT ?? 40_000);
const ROUNDS = Number(process.env.ROUNDS ?? 1);
for (const tool of ['valgrind', 'callgrind_control']) {
  if (!which(tool)) throw new Error(`${tool} is not installed: apt-get install valgrind`);
}

const work = mkdtempSync(path.join(tmpdir(), 'cs-bench-instructions-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

/** Each variant's built balancer fixture: the named revisions' packages, then the working tree's. */
const variants: { name: string; fixture: string }[] = [];
for (const [i, rev] of process.argv.slice(2).entries()) {
  const tree = path.join(work, `tree-${i}`);
  mkdirSync(tree);
  // git archive: the revision's files without touching the checkout; its fixture is this checkout's, so every
  // variant is driven the same way.
  execFileSync('sh', ['-c', `git -C "$1" archive "$2" packages | tar -x -C "$3"`, 'sh', root, rev, tree]);
  const dir = installBuilt(path.join(work, `built-${i}`), tree);
  variants.push({ name: `${rev} (${execFileSync('git', ['-C', root, 'rev-parse', '--short', rev], { encoding: 'utf8' }).trim()})`, fixture: builtFixture(dir, 'balancer-process') });
}
const dir = installBuilt(path.join(work, 'built-tree'));
variants.push({ name: 'working tree', fixture: builtFixture(dir, 'balancer-process') });

const autocannon = createRequire(import.meta.url).resolve('autocannon/autocannon.js');
/** Exactly `amount` GETs from 32 connections; throws unless every one was answered 2xx. */
function drive(url: string, amount: number): void {
  const out = execFileSync(process.execPath, [autocannon, '--json', '-c', '32', '-a', String(amount), '-t', '30', url], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
  const r = JSON.parse(out) as { requests: { total: number }; errors: number; timeouts: number; non2xx: number };
  if (r.requests.total !== amount || r.errors || r.timeouts || r.non2xx) {
    throw new Error(`load of ${amount}: ${r.requests.total} answered, ${r.errors} errors, ${r.timeouts} timeouts, ${r.non2xx} non-2xx`);
  }
}

/** The `totals:` (or `summary:`) line of a callgrind dump: the Ir event, instructions executed. */
function totalOf(file: string): number | undefined {
  const m = readFileSync(file, 'utf8').match(/^(?:totals|summary): (\d+)/m);
  return m ? Number(m[1]) : undefined;
}

async function measure(variant: number, ups: number[], round: number): Promise<number> {
  const out = path.join(work, `cg-${variant}-${round}`);
  mkdirSync(out);
  const port = await freePort();
  const lb: Proc = startProcess('valgrind', [
    '--tool=callgrind', '--smc-check=all-non-file', '--dump-instr=no', `--callgrind-out-file=${path.join(out, 'cg.out')}`,
    process.execPath, variants[variant]!.fixture, String(port), ...ups.map((p) => `http://127.0.0.1:${p}`),
  ]);
  try {
    await lb.waitFor(/ready /, 180_000);
    const url = `http://127.0.0.1:${port}/`;
    drive(url, WARM);
    execFileSync('callgrind_control', ['-z', String(lb.pid)], { stdio: 'ignore' });
    drive(url, COUNT);
    execFileSync('callgrind_control', ['-d', String(lb.pid)], { stdio: 'ignore' });
    // The dump is written by the process itself, some time after the request: wait until it is complete.
    const total = await until(
      'the callgrind dump',
      () => {
        const dumps = readdirSync(out).filter((f) => /^cg\.out\.\d+$/.test(f));
        return dumps.length === 1 ? totalOf(path.join(out, dumps[0]!)) : undefined;
      },
      120_000,
      200,
    );
    return total / COUNT;
  } finally {
    await lb.stop('SIGKILL');
  }
}

const procs: Proc[] = [];
try {
  const ups = await startUpstreams(procs);
  /** Instructions per request, by variant, one per round. */
  const results: number[][] = variants.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, v] of variants.entries()) {
      const perRequest = await measure(i, ups, round);
      results[i]!.push(perRequest);
      console.log(`round ${round + 1} ${v.name}: ${Math.round(perRequest).toLocaleString('en-US')} instructions per request`);
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const base = mean(results[0]!);
  console.log(`\n| balancer build | instructions per request (${WARM} warm, ${COUNT} counted, -c 32) | / ${variants[0]!.name} |\n|---|---:|---:|`);
  for (const [i, v] of variants.entries()) {
    const xs = results[i]!;
    console.log(`| ${v.name} | ${xs.map((x) => Math.round(x).toLocaleString('en-US')).join(', ')} | ${(mean(xs) / base).toFixed(3)}x |`);
  }
} finally {
  await Promise.all(procs.map((p) => p.stop()));
}
