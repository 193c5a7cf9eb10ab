import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';

const VAR = 'CS_TESTKIT_TAG';

/**
 * Finds processes a test left behind. Every process started with `tag.env` in its environment passes it on to
 * its children (a cluster primary to its workers, a launcher to its primaries), so after the test a scan of
 * /proc finds whatever still runs from it, however deep and even if it was reparented. Linux only (/proc).
 */
export interface ProcessTag {
  /** Merge into the environment of the processes the test starts. */
  readonly env: Record<string, string>;
  /** Pids (with command lines) of live processes carrying the tag; zombies do not count. */
  leftovers(): Array<{ pid: number; command: string }>;
  /** SIGKILL to every live process carrying the tag: the cleanup after a test that failed half-way. */
  kill(): void;
}

export function processTag(): ProcessTag {
  const value = randomUUID();
  const needle = `${VAR}=${value}`;
  const leftovers = () => {
    const found: Array<{ pid: number; command: string }> = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (!readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0').includes(needle)) continue;
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        if (stat[stat.lastIndexOf(')') + 2] === 'Z') continue;
        found.push({ pid: Number(entry), command: readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim() });
      } catch {
        // exited meanwhile, or not ours to read
      }
    }
    return found;
  };
  return {
    env: { [VAR]: value },
    leftovers,
    kill() {
      for (const { pid } of leftovers()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    },
  };
}
