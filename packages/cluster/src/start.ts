import cluster from 'node:cluster';
import os from 'node:os';
import { controlPath } from './control.ts';
import { ClusterConfigError } from './errors.ts';
import { resolveOptions, type ClusterOptions } from './options.ts';
import { ClusterPrimary } from './primary.ts';
import { setupWorkers } from './setup.ts';
import type { StartedCluster } from './types.ts';

// node:cluster's settings (exec, execArgv, scheduling policy) are per process, so is the primary.
let running = false;

/**
 * Starts the primary: forks the workers, waits until each is ready (or has failed), and supervises them.
 * Rejects when no worker became ready. Installs SIGHUP (reload) and SIGTERM/SIGINT (graceful stop, exit 0;
 * a second SIGINT stops at once) handlers unless `signals: false`.
 */
export async function startCluster(options: ClusterOptions): Promise<StartedCluster> {
  if (!cluster.isPrimary) throw new ClusterConfigError('startCluster() runs in the primary; it was called inside a worker');
  if (running) throw new ClusterConfigError('startCluster(): a cluster already runs in this process; one primary per process');
  const o = resolveOptions(options, process.env, controlPath);
  const signals = o.signals;
  running = true;

  setupWorkers(o);

  const primary = new ClusterPrimary(o);
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  const stop = () => primary.stop().then(resolveStopped);
  void stopped.then(() => (running = false));
  // A stop signal while the workers boot (Ctrl-C right after start, a launcher giving up): kill them, remove the
  // control socket and exit 128+n. Without this the default action would end the primary and leave its socket.
  // SIGHUP (reload) during the start is ignored: there is nothing to reload yet.
  let interrupted: { signal: NodeJS.Signals; stopped: Promise<void> } | undefined;
  const early = (signal: NodeJS.Signals) => {
    if (signal === 'SIGHUP') return primary.log('SIGHUP during start: ignored (nothing to reload yet)');
    if (interrupted) return;
    primary.log(`${signal} during start: stopping the workers`);
    interrupted = { signal, stopped: primary.forceStop() };
  };
  const earlySignals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  if (signals) for (const signal of earlySignals) process.on(signal, early);
  let failure: { err: unknown } | undefined;
  try {
    await primary.start();
  } catch (err) {
    running = false;
    failure = { err };
  } finally {
    for (const signal of earlySignals) process.off(signal, early);
  }
  // Interrupted, whether the start then failed (its workers were killed) or just made it: one way out.
  if (interrupted) {
    await interrupted.stopped;
    process.exit(128 + (os.constants.signals[interrupted.signal] ?? 0));
  }
  if (failure) throw failure.err;

  if (signals) {
    let interrupts = 0;
    const onHup = () => {
      primary.reload().catch((err: Error) => primary.log(`reload refused: ${err.message}`));
    };
    const onStop = (signal: NodeJS.Signals) => {
      interrupts++;
      if (interrupts > 1) {
        if (signal === 'SIGINT') void primary.forceStop().then(() => process.exit(130));
        return;
      }
      primary.log(`${signal}: graceful stop (send SIGINT again to stop at once)`);
      void stop().then(() => process.exit(0));
    };
    process.on('SIGHUP', onHup);
    process.on('SIGINT', onStop);
    process.on('SIGTERM', onStop);
    void stopped.then(() => {
      process.off('SIGHUP', onHup);
      // SIGINT/SIGTERM handlers stay until exit so a second Ctrl-C during the drain still means "now".
    });
  }
  primary.onStoppedByControl(() => {
    resolveStopped();
    if (signals) process.exit(0);
  });

  return {
    name: primary.name,
    controlPath: primary.controlPath,
    stopped,
    reload: (update) => primary.reload(update),
    scale: (workers) => primary.scale(workers),
    stop,
    status: () => primary.status(),
  };
}
