import cluster from 'node:cluster';
import type { ResolvedOptions } from './options.ts';

/**
 * node:cluster's fork settings for the workers: the entry, its arguments and Node flags. Set at start and again
 * by a reload that changed them (setupPrimary applies to the forks that follow; running workers keep theirs).
 */
export function setupWorkers(o: ResolvedOptions): void {
  const execArgv = process.execArgv.filter((a) => !a.startsWith('--test') && !a.startsWith('--inspect'));
  // Running from sources: workspace imports must resolve to src/ in the workers too.
  if (import.meta.url.endsWith('.ts') && !execArgv.some((a) => a.startsWith('--conditions=@cluster-session/source') || a === '-C')) {
    execArgv.push('--conditions=@cluster-session/source');
  }
  const preload = new URL(import.meta.url.endsWith('.ts') ? './preload.ts' : './preload.js', import.meta.url).href;
  cluster.schedulingPolicy = o.schedulingPolicy === 'os' ? cluster.SCHED_NONE : cluster.SCHED_RR;
  cluster.setupPrimary({ exec: o.entry, args: [...o.args], execArgv: [...execArgv, ...o.execArgv, '--import', preload], silent: true });
}
