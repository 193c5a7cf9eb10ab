import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The packages an app installs (testkit and the create- scaffolder are not among them). */
const PACKAGES = ['hash', 'core', 'jwt', 'session', 'cluster', 'balancer', 'cli'];

/** A relative specifier ending in `.ts`, static or dynamic import alike (what tsc's rewriteRelativeImportExtensions rewrites). */
const RELATIVE_TS = /(['"])(\.{1,2}\/[^'"\n]+)\.ts\1/g;

function emit(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    if (entry.isDirectory()) emit(source, path.join(to, entry.name));
    else if (entry.name.endsWith('.ts')) {
      const code = stripTypeScriptTypes(readFileSync(source, 'utf8'), { mode: 'strip' });
      writeFileSync(path.join(to, entry.name.replace(/\.ts$/, '.js')), code.replace(RELATIVE_TS, '$1$2.js$1'));
    }
  }
}

/**
 * The workspace packages laid out as an install of them: `<dir>/node_modules/@cluster-session/<name>/` with the
 * package's own package.json, bin/ and a dist/ of its sources with the types stripped (the same JavaScript tsc
 * emits: the sources use erasable syntax only), beside the third-party packages of this checkout. A process
 * started from there runs as a published build does. Running the .ts sources instead loads Node's TypeScript
 * stripper into every process (a worker of the plain bench app: 101 MB RSS against 65 MB, and about 300 ms more CPU
 * at each start, i.e. at every reload), which the benchmarks would charge to us and no user pays. `from` is the tree
 * whose `packages/` are built (another revision's, for an A/B); the third-party packages are this checkout's either
 * way. Returns `dir`.
 */
export function installBuilt(dir: string, from = root): string {
  const modules = path.join(dir, 'node_modules');
  const ours = path.join(modules, '@cluster-session');
  mkdirSync(ours, { recursive: true });
  writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
  for (const name of readdirSync(path.join(root, 'node_modules'))) {
    if (name !== '@cluster-session' && name !== '.bin') symlinkSync(path.join(root, 'node_modules', name), path.join(modules, name));
  }
  for (const name of PACKAGES) {
    const source = path.join(from, 'packages', name);
    const to = path.join(ours, name);
    mkdirSync(to);
    cpSync(path.join(source, 'package.json'), path.join(to, 'package.json'));
    if (existsSync(path.join(source, 'bin'))) cpSync(path.join(source, 'bin'), path.join(to, 'bin'), { recursive: true });
    emit(path.join(source, 'src'), path.join(to, 'dist'));
  }
  return dir;
}

/** A bench fixture (`bench/fixtures/<name>.ts`) as JavaScript in `dir`, beside an installBuilt() there. Returns its path. */
export function builtFixture(dir: string, name: string): string {
  const file = path.join(dir, `${name}.js`);
  writeFileSync(file, stripTypeScriptTypes(readFileSync(path.join(root, 'bench', 'fixtures', `${name}.ts`), 'utf8'), { mode: 'strip' }));
  return file;
}

let shared: string | undefined;
/** One installBuilt() for this bench process, removed when it exits (for processes that outlive a scenario's own directory). */
export function sharedInstall(): string {
  if (shared) return shared;
  const dir = mkdtempSync(path.join(tmpdir(), 'cs-bench-built-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return (shared = installBuilt(dir));
}
