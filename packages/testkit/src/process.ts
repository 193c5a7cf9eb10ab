import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { killTree } from './tree.ts';

/** Whether process `pid` exists (one of another user that may not be signalled counts: EPERM). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything written to stdout and stderr so far, interleaved. */
  output(): string;
  /** Resolves with the first match of `pattern` in the output (already seen or yet to come). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends `signal` and resolves with the exit code (or signal name) once the process is gone. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | string>;
  readonly exited: Promise<number | string>;
}

const live = new Set<ChildProcess>();
// A test that fails half-way leaves what it started running. The exit watchdog (exit-watchdog.ts) ends the file's
// process when something still holds it after its tests, and this takes the whole tree with it: a launcher's
// primaries and their workers hold the file's stdout too, and would keep the runner waiting for it to close.
process.once('exit', () => {
  for (const child of live) if (child.pid !== undefined) killTree(child.pid);
});

export interface ProcessOptions extends SpawnOptions {
  echo?: boolean;
  /**
   * Run inside this network namespace (`ip netns exec NAME command ...`, which needs root). `ip` execs the
   * command, so the pid, signals and exit code are the command's own.
   */
  netns?: string;
}

/**
 * Spawns a real child process and keeps its output for assertions. Children still alive when the test process
 * exits are killed, so a failed test never leaves servers behind.
 */
export function startProcess(command: string, args: readonly string[], options: ProcessOptions = {}): Proc {
  const { netns, echo, ...spawnOptions } = options;
  const child = netns
    ? spawn('ip', ['netns', 'exec', netns, command, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOptions })
    : spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOptions });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  live.add(child);
  let out = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    out += chunk.toString();
    if (echo || process.env.TESTKIT_ECHO) process.stderr.write(chunk);
    for (const w of waiters) w();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  let gone = false;
  const exited = once(child, 'exit').then(([code, signal]) => {
    live.delete(child);
    // Before the waiters run: a waitFor() on a process that exits without printing its pattern rejects now,
    // not when its timeout ends.
    gone = true;
    for (const w of waiters) w();
    return (code ?? signal) as number | string;
  });

  return {
    child,
    pid: child.pid,
    exited,
    output: () => out,
    waitFor(pattern, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = out.match(pattern);
          if (m) return done(() => resolve(m));
          if (gone) done(() => reject(new Error(`${command} exited before printing ${pattern}; output:\n${out}`)));
        };
        const timer = setTimeout(
          () => done(() => reject(new Error(`${command} did not print ${pattern} within ${timeoutMs} ms; output:\n${out}`))),
          timeoutMs,
        );
        const done = (fn: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          fn();
        };
        waiters.add(check);
        check();
      });
    },
    async stop(signal = 'SIGTERM', timeoutMs = 10_000) {
      if (!gone) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Node with the flags this process runs under (so `--conditions=@cluster-session/source` reaches children). */
export function startNode(args: readonly string[], options: ProcessOptions = {}): Proc {
  return startProcess(process.execPath, [...process.execArgv.filter((a) => !a.startsWith('--test')), ...args], options);
}
