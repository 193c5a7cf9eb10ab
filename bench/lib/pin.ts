import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { children } from './proc.ts';

/** Sets the CPU affinity of every thread of `pid` (taskset -a). False when taskset is missing or refuses. */
function taskset(pid: number, cpus: string): boolean {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface SubjectCore {
  /** Moves a subject process (one of the contenders) onto the reserved core. */
  subject(pid: number): void;
  /**
   * Moves a process and its children (a cluster's primary and workers) onto the reserved core; processes it forks
   * later (a reload's new workers) inherit the affinity.
   */
  subjectTree(pid: number): void;
  /** Gives the harness all cores back. */
  release(): void;
  /** How the run was laid out, for the report. */
  readonly note: string;
}

/**
 * Reserves core 0 for the process under test and moves this harness, and with it everything it starts from now
 * on (load generator, Redis, MongoDB: children inherit the affinity), onto the other cores. On a small machine the
 * load generator and the store otherwise compete with the subject for the same cores, and who wins that race
 * changes from round to round; pinned, each contender's req/s is what one core of it can do, which is the figure
 * that compares. A no-op, with a note, without taskset (util-linux) or with one core.
 */
export function reserveSubjectCore(): SubjectCore {
  const cores = availableParallelism();
  const all = `0-${cores - 1}`;
  if (cores < 2 || !taskset(process.pid, `1-${cores - 1}`)) {
    return { subject: () => {}, subjectTree: () => {}, release: () => {}, note: `not pinned (${cores < 2 ? 'one core' : 'taskset not available'})` };
  }
  return {
    subject: (pid) => void taskset(pid, '0'),
    subjectTree: (pid) => {
      for (const p of [pid, ...children(pid)]) taskset(p, '0');
    },
    release: () => void taskset(process.pid, all),
    note: `each contender pinned to core 0; load generator and stores on ${cores > 2 ? `cores 1-${cores - 1}` : 'core 1'}`,
  };
}
