/**
 * One record per running stack, next to the clusters' control sockets: who runs it (the `npm start` pid) and its
 * instance primaries. It tells a stack that still runs (refuse, and say how to stop it) from one whose `npm start`
 * was killed (SIGKILL, a crashed terminal) and left its instances running: those are stopped and replaced.
 */
import fs from 'node:fs';
import path from 'node:path';
import { controlPath, controlRequest, removeStaleControlSocket, runtimeDir } from '@cluster-session/cluster';
import { StackError, type StackConfig } from './stack-config.ts';
import { stopProcess, isAlive, commandLine } from './processes.ts';

interface Record_ {
  pid: number;
  /** process.argv[1] of that `npm start`: with the pid, tells it from an unrelated process that got the pid later. */
  program: string;
  port: number;
  /** The instance primaries: pid and cluster name (their command line names it, which guards against pid reuse). */
  primaries: Array<{ pid: number; cluster: string }>;
}

export interface StackLock {
  /** Records the instance primaries once spawned, so a later start can clean up after a killed one. */
  primaries(list: Array<{ pid: number; cluster: string }>): void;
  /** Drops the record, and the control socket of any instance primary that is gone without removing its own. */
  release(): Promise<void>;
}

const file = (name: string) => path.join(runtimeDir(), `${name}.stack.json`);

function read(name: string): Record_ | undefined {
  try {
    return JSON.parse(fs.readFileSync(file(name), 'utf8')) as Record_;
  } catch {
    return undefined;
  }
}

function write(name: string, record: Record_): void {
  fs.mkdirSync(runtimeDir(), { recursive: true, mode: 0o700 });
  const tmp = `${file(name)}.${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(record), { mode: 0o600 });
  fs.renameSync(tmp, file(name));
}

/** A pid that still runs the same program (the pid was not reused by something else). */
const runs = (pid: number, needle: string) => isAlive(pid) && (commandLine(pid)?.includes(needle) ?? true);

/**
 * Claims the stack's name: refuses when its `npm start` still runs or when another cluster uses one of its names,
 * stops instances left behind by a killed `npm start`. Resolves once the name is ours.
 */
export async function claimStack(config: StackConfig, log: (line: string) => void): Promise<StackLock> {
  const previous = read(config.name);
  if (previous && previous.pid !== process.pid && runs(previous.pid, previous.program)) {
    throw new StackError(
      `a stack named ${config.name} already runs (npm start, pid ${previous.pid}, port ${previous.port})`,
      `stop it (Ctrl-C in its terminal, or kill ${previous.pid}), or start this one under another name: STACK_NAME=other npm start`,
    );
  }
  for (const p of previous?.primaries ?? []) {
    if (!runs(p.pid, p.cluster)) continue;
    log(`instance ${p.cluster} (pid ${p.pid}) was left running by an npm start that was killed: stopping it`);
    await stopProcess(p.pid, 8_000);
  }
  for (const { cluster } of config.instances) {
    const socket = controlPath(cluster);
    const live = await controlRequest(socket, 'status', 2_000).then(() => true, () => false);
    if (live) {
      throw new StackError(
        `the cluster name ${cluster} is in use by a running cluster (control socket ${socket})`,
        `stop that cluster (npx cluster-session stop --name ${cluster}), or give this stack another name: STACK_NAME=other npm start`,
      );
    }
  }
  const record: Record_ = { pid: process.pid, program: process.argv[1] ?? 'start', port: config.port, primaries: [] };
  write(config.name, record);
  return {
    primaries(list) {
      record.primaries = list;
      write(config.name, record);
    },
    async release() {
      // A primary removes its socket on every way out it sees; one killed (SIGKILL after the stop timeout, or a
      // stop signal in the instant its socket came up) leaves it. The name was claimed for this stack above, so a
      // socket nobody listens on is that primary's: removed, so nothing of the stack is left behind.
      for (const p of record.primaries) {
        const socket = controlPath(p.cluster);
        if (isAlive(p.pid) || !fs.existsSync(socket) || !(await removeStaleControlSocket(socket))) continue;
        log(`removed the control socket ${socket} that instance ${p.cluster} (pid ${p.pid}) left`);
      }
      if (read(config.name)?.pid === process.pid) fs.rmSync(file(config.name), { force: true });
    },
  };
}
