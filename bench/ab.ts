/**
 * `node --conditions=@cluster-session/source bench/ab.ts <before-checkout> [route...]`: the JWT bench app of another
 * checkout (before) against this one (after), both pinned to core 0, alternating rounds, medians. For a change's
 * before/after figures taken in one run under the same load.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request, startNode, type Proc } from '@cluster-session/testkit';
import { load } from './lib/load.ts';
import { reserveSubjectCore } from './lib/pin.ts';
import { alternate, median } from './lib/stats.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const [beforeRoot, ...routes] = process.argv.slice(2);
if (!beforeRoot) throw new Error('usage: bench/ab.ts <before-checkout> [route...]');
const rounds = Number(process.env.ROUNDS ?? 3);
const durationSec = Number(process.env.DURATION ?? 5);
const env = { ...process.env, JWT_SECRET: 'bench-secret-bench-secret-bench-secret-0123' };
const core = reserveSubjectCore();
const TICK_US = 1e6 / 100; // USER_HZ
/** utime + stime of a process, in µs (from /proc: CPU time, which other load inflates far less than wall time). */
const cpuOf = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_US;
};
const pids: Record<string, number> = {};
/** One load run with the subject's CPU µs per request beside its req/s. */
async function measured(name: string, url: string, o: Parameters<typeof load>[1]) {
  const c0 = cpuOf(pids[name]!);
  const r = await load(url, o);
  return { ...r, cpuUs: (cpuOf(pids[name]!) - c0) / Math.max(1, r.requests) };
}
const procs: Proc[] = [];
try {
  const start = async (root: string, kind: string) => {
    const p = startNode([path.join(root, 'bench', 'fixtures', 'jwt-app.ts'), kind], { env, cwd: path.join(root, 'bench') });
    procs.push(p);
    const url = (await p.waitFor(/listening (\S+)/))[1]!;
    core.subject(p.pid);
    pids[`${root}:${kind}`] = p.pid;
    return url;
  };
  const roots = { before: path.resolve(beforeRoot), after: path.join(here, '..') };
  const urls = { before: await start(roots.before, 'jwt'), after: await start(roots.after, 'jwt'), none: await start(roots.after, 'none') };
  pids.before = pids[`${roots.before}:jwt`]!;
  pids.after = pids[`${roots.after}:jwt`]!;
  pids.none = pids[`${roots.after}:none`]!;
  const cookies: Record<string, string> = {};
  for (const k of ['before', 'after'] as const) cookies[k] = `session=${(await request(`${urls[k]}/login`, { method: 'POST', body: {} })).cookies.session}`;
  for (const route of routes.length ? routes : ['/me', '/whoami']) {
    const opts = { connections: 10, durationSec };
    for (const k of ['before', 'after', 'none'] as const) await load(`${urls[k]}${route === '/whoami' && k === 'none' ? '/me' : route}`, { ...opts, durationSec: 2, headers: { cookie: cookies[k] ?? '' } });
    const r = await alternate(rounds, {
      before: () => measured('before', `${urls.before}${route}`, { ...opts, headers: { cookie: cookies.before! } }),
      after: () => measured('after', `${urls.after}${route}`, { ...opts, headers: { cookie: cookies.after! } }),
      none: () => measured('none', `${urls.none}/me`, opts),
    });
    const rps = (k: keyof typeof r) => median(r[k].map((x) => x.rps));
    const cpu = (k: keyof typeof r) => median(r[k].map((x) => x.cpuUs));
    console.log(`${route}: CPU per request: before ${cpu('before').toFixed(1)} µs, after ${cpu('after').toFixed(1)} µs, no session ${cpu('none').toFixed(1)} µs; no-session/after ${(cpu('none') / cpu('after')).toFixed(2)}x (was ${(cpu('none') / cpu('before')).toFixed(2)}x), before/after ${(cpu('before') / cpu('after')).toFixed(2)}x`);
    console.log(`${route}: before ${rps('before').toFixed(0)} req/s (${(rps('before') / rps('none')).toFixed(2)}x of no session), after ${rps('after').toFixed(0)} req/s (${(rps('after') / rps('none')).toFixed(2)}x), no session ${rps('none').toFixed(0)}; after/before ${(rps('after') / rps('before')).toFixed(2)}x (${core.note}, ${rounds} rounds x ${durationSec} s, medians, under load)`);
  }
} finally {
  await Promise.all(procs.map((p) => p.stop()));
  core.release();
}
