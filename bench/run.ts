/**
 * `npm run bench [-- name...] [--smoke] [--rounds N] [--duration S] [--readme]`
 *
 * Every scenario measures us and our peer in the same run, alternating, over several rounds, and reports medians
 * and ratios. Results go to bench/results.json and a Markdown table on stdout; --readme also replaces the table in
 * README.md between the bench markers.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machine, markdown } from './lib/report.ts';
import type { Row, Scenario } from './lib/types.ts';

const SCENARIOS: Record<string, () => Promise<{ default: Scenario }>> = {
  balancer: () => import('./scenarios/balancer.ts'),
  'balancer-many': () => import('./scenarios/balancer-many.ts'),
  'balancer-workers': () => import('./scenarios/balancer-workers.ts'),
  session: () => import('./scenarios/session.ts'),
  'session-scale': () => import('./scenarios/session-scale.ts'),
  'sqlite-store': () => import('./scenarios/sqlite-store.ts'),
  jwt: () => import('./scenarios/jwt.ts'),
  'jwt-crypto': () => import('./scenarios/jwt-crypto.ts'),
  'cluster-scaling': () => import('./scenarios/cluster-scaling.ts'),
  reload: () => import('./scenarios/reload.ts'),
  sticky: () => import('./scenarios/sticky.ts'),
  metrics: () => import('./scenarios/metrics.ts'),
  edge: () => import('./scenarios/edge.ts'),
  'access-log': () => import('./scenarios/access-log.ts'),
};

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    smoke: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    readme: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  console.log(`usage: npm run bench -- [${Object.keys(SCENARIOS).join('|')}...] [--smoke] [--rounds N] [--duration SECONDS] [--readme]`);
  process.exit(0);
}
const unknown = positionals.filter((p) => !(p in SCENARIOS));
if (unknown.length) {
  console.error(`unknown scenario ${unknown.join(', ')}; choose from ${Object.keys(SCENARIOS).join(', ')}`);
  process.exit(2);
}

const smoke = values.smoke;
const ctx = {
  smoke,
  rounds: Number(values.rounds ?? (smoke ? 1 : 3)),
  durationSec: Number(values.duration ?? (smoke ? 1 : 8)),
  log: (message: string) => console.error(`[bench] ${message}`),
};
if (!(ctx.rounds >= 1) || !(ctx.durationSec >= 1)) {
  console.error('--rounds and --duration take whole numbers >= 1');
  process.exit(2);
}

const rows: Row[] = [];
let failed = false;
for (const name of positionals.length ? positionals : Object.keys(SCENARIOS)) {
  const scenario = (await SCENARIOS[name]!()).default;
  ctx.log(`${scenario.name}: ${scenario.title}`);
  try {
    rows.push(...(await scenario.run(ctx)));
  } catch (err) {
    failed = true;
    ctx.log(`${scenario.name} failed: ${err instanceof Error ? err.stack : err}`);
    rows.push({ scenario: scenario.name, metric: 'failed', unit: '', ours: NaN, note: String(err instanceof Error ? err.message : err).slice(0, 120) });
  }
}

const m = machine();
const table = markdown(rows, m);
const here = path.dirname(fileURLToPath(import.meta.url));
// A smoke pass proves the harness runs; its one-second figures must not replace a real run's results.
if (!smoke) writeFileSync(path.join(here, 'results.json'), JSON.stringify({ date: new Date().toISOString(), machine: m, rows }, null, 2) + '\n');
console.log(table);
if (values.readme && !smoke) {
  const readme = path.join(here, '..', 'README.md');
  const text = readFileSync(readme, 'utf8');
  const next = text.replace(/(<!-- bench:start -->\n)[\s\S]*?(\n<!-- bench:end -->)/, `$1${table}$2`);
  writeFileSync(readme, next);
}
process.exitCode = failed ? 1 : 0;
