import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startProcess, type Proc } from '@cluster-session/testkit';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..', '..');

/**
 * The balancer as plain JavaScript (types stripped once, here), so its process runs as a published build would:
 * running the .ts sources loads Node's TypeScript stripper, ~50 MiB that would blur the memory figure.
 */
export function buildJs(dir: string): string {
  const emit = (from: string, to: string, rewrite: (code: string) => string) => {
    mkdirSync(to, { recursive: true });
    for (const f of readdirSync(from).filter((n) => n.endsWith('.ts'))) {
      const code = stripTypeScriptTypes(readFileSync(path.join(from, f), 'utf8'), { mode: 'strip' });
      writeFileSync(path.join(to, f.replace(/\.ts$/, '.js')), rewrite(code.replace(/(from\s+'\.{1,2}\/[^']+)\.ts'/g, "$1.js'")));
    }
  };
  writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
  // The packages' own dependencies (valibot under core, prom-client under the balancer), resolved as an install would.
  symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  emit(path.join(root, 'packages/hash/src'), path.join(dir, 'hash'), (c) => c);
  emit(path.join(root, 'packages/core/src'), path.join(dir, 'core'), (c) => c);
  emit(path.join(root, 'packages/balancer/src'), path.join(dir, 'balancer'), (c) =>
    c.replaceAll("'@cluster-session/hash'", "'../hash/index.js'").replaceAll("'@cluster-session/core'", "'../core/index.js'"),
  );
  const fixture = stripTypeScriptTypes(readFileSync(path.join(root, 'bench', 'fixtures', 'balancer-process.ts'), 'utf8'), { mode: 'strip' });
  writeFileSync(path.join(dir, 'balancer-process.js'), fixture.replaceAll("'@cluster-session/balancer'", "'./balancer/index.js'"));
  return path.join(dir, 'balancer-process.js');
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
