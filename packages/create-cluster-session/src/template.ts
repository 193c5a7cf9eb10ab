/**
 * The starter's template, made from examples/express-app (the one source of the starter): the files a user gets,
 * as TypeScript (`ts/`, the example's own sources) and as JavaScript (`js/`, types erased), each with its own
 * package.json on the published versions. Run by `prepack` into template/, and by a checkout's
 * create-cluster-session on the fly (where no template/ was packed).
 */
import fs from 'node:fs';
import path from 'node:path';
import { CreateTemplateError } from './errors.ts';
import type * as TS from 'typescript';
import { toJavaScript } from './to-js.ts';

/** What a starter is made of, relative to the example; the example's other tests use the private testkit. */
const STARTER = ['src', 'public', 'test/starter.test.ts', '.nvmrc'];
const SCOPE = '@cluster-session/';
export type Variant = 'js' | 'ts';

type Manifest = Record<string, any>;

function files(root: string, rel: string): string[] {
  const full = path.join(root, rel);
  if (!fs.statSync(full).isDirectory()) return [rel];
  return fs.readdirSync(full).sort().flatMap((name) => files(root, path.join(rel, name)));
}

/** The starter's package.json: the example's dependencies, the suite's own at `^version`, no `--conditions`. */
function manifest(example: Manifest, rootManifest: Manifest, version: string, variant: Variant): Manifest {
  const dependencies: Record<string, string> = {};
  for (const [name, range] of Object.entries<string>(example.dependencies ?? {})) {
    if (name.startsWith(SCOPE) && range !== version) {
      throw new CreateTemplateError(`examples/express-app depends on ${name}@${range}, not on the suite's version ${version}`);
    }
    dependencies[name] = name.startsWith(SCOPE) ? `^${version}` : range;
  }
  const ext = variant === 'ts' ? 'ts' : 'js';
  const out: Manifest = {
    name: 'my-app',
    version: '0.1.0',
    private: true,
    description: 'A clustered Express app whose logins survive hops across workers and instances (cluster-session starter).',
    type: 'module',
    engines: example.engines,
    scripts: {
      start: `node --import ./src/check-node.js src/start.${ext}`,
      test: variant === 'ts' ? 'tsc && node --test "test/**/*.test.ts"' : 'node --test "test/**/*.test.js"',
      ...(variant === 'ts' ? { typecheck: 'tsc' } : {}),
    },
    dependencies,
  };
  if (variant === 'ts') {
    const dev = rootManifest.devDependencies ?? {};
    out.devDependencies = Object.fromEntries(['@types/express', '@types/node', 'typescript'].map((name) => [name, dev[name] ?? 'latest']));
  }
  return out;
}

/** The source text of one starter file for a variant, and the name it gets. */
function convert(ts: typeof TS, rel: string, text: string, variant: Variant): [string, string] {
  if (variant === 'ts' || !rel.endsWith('.ts')) return [rel, text];
  return [rel.replace(/\.ts$/, '.js'), toJavaScript(ts, rel, text)];
}

/**
 * Writes `out/js` and `out/ts` from `exampleDir`; `assets` holds the files of create-cluster-session's own
 * (README.md, gitignore, tsconfig.json). TypeScript is needed here only: the published template is written.
 */
export async function writeTemplate(o: { exampleDir: string; assets: string; out: string; version: string }): Promise<void> {
  const pkgFile = path.join(o.exampleDir, 'package.json');
  if (!fs.existsSync(pkgFile)) throw new CreateTemplateError(`no starter template: ${o.exampleDir} has no package.json`);
  const example = JSON.parse(fs.readFileSync(pkgFile, 'utf8')) as Manifest;
  const rootFile = path.join(o.exampleDir, '..', '..', 'package.json');
  const rootManifest = fs.existsSync(rootFile) ? (JSON.parse(fs.readFileSync(rootFile, 'utf8')) as Manifest) : {};
  const ts = ((await import('typescript')) as unknown as { default: typeof TS }).default;
  const sources = STARTER.flatMap((rel) => files(o.exampleDir, rel));
  for (const variant of ['js', 'ts'] as const) {
    const dir = path.join(o.out, variant);
    fs.rmSync(dir, { recursive: true, force: true });
    for (const rel of sources) {
      const text = fs.readFileSync(path.join(o.exampleDir, rel), 'utf8');
      // A starter needs nothing private: a starter file importing the testkit is a packaging fault.
      if (/@cluster-session\/testkit/.test(text)) throw new CreateTemplateError(`${rel} imports the private @cluster-session/testkit: it cannot ship in the starter`);
      const [name, body] = convert(ts, rel, text, variant);
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      fs.writeFileSync(path.join(dir, name), body);
    }
    for (const asset of ['README.md', 'gitignore', ...(variant === 'ts' ? ['tsconfig.json'] : [])]) {
      fs.copyFileSync(path.join(o.assets, asset), path.join(dir, asset));
    }
    fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest(example, rootManifest, o.version, variant), null, 2)}\n`);
  }
}
