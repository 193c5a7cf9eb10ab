import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** CPU time (user + system) a process has used so far, in microseconds (Linux /proc, USER_HZ 100). */
export function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
}

/** Resident memory of a process in MiB, one decimal. */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 102.4) / 10 : NaN;
}

/** The direct children of a process (a primary's workers). */
export function children(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return []; // pgrep exits 1 when there are none
  }
}

/** CPU time of a process and its children (a primary and its workers), in microseconds. */
export function treeCpuMicros(pid: number): number {
  return [pid, ...children(pid)].reduce((n, p) => {
    try {
      return n + cpuMicros(p);
    } catch {
      return n;
    }
  }, 0);
}
