import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startProcess, type Proc } from '@cluster-session/testkit';
import { builtFixture, installBuilt } from './built.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..', '..');

/**
 * The balancer as plain JavaScript in `dir` (bench/lib/built.ts), so its process runs as a published build would:
 * running the .ts sources loads Node's TypeScript stripper, ~50 MiB that would blur the memory figure.
 */
export function buildJs(dir: string): string {
  return builtFixture(installBuilt(dir), 'balancer-process');
}

/** The two upstream processes the balancer benchmarks proxy to (bench/fixtures/upstream.ts); their ports. */
export async function startUpstreams(procs: Proc[]): Promise<number[]> {
  const ports = await Promise.all([freePort(), freePort()]);
  for (const [i, p] of ports.entries()) {
    const proc = startProcess(process.execPath, [path.join(root, 'bench', 'fixtures', 'upstream.ts'), String(p), `u${i}`]);
    procs.push(proc);
    await proc.waitFor(/listening/);
  }
  return ports;
}
