/**
 * The package.json a package is published with, written for the length of `npm pack` / `npm publish` only.
 *
 *   node ../../scripts/pack-manifest.ts prepack    (a package's `prepack`): build dist/ with `tsc -b`, keep the
 *                                                  checkout's package.json aside, write the published one
 *   node ../../scripts/pack-manifest.ts postpack   (its `postpack` and `postpublish`): put the checkout's back
 *   node ../../scripts/pack-manifest.ts restore    any leftover of an interrupted pack, in every package
 *
 * The published manifest has no `@cluster-session/source` export condition (a consumer must never resolve our
 * `.ts` sources, whatever conditions it runs with), no scripts that only work inside this repository, and no
 * devDependencies (the private testkit is one). npm has no `publishConfig` for `exports`, hence the rewrite.
 *
 * `npm publish` reads package.json again after `postpack` to build the registry's metadata, so under publish
 * the restore waits for `postpublish` (npm_command tells which one runs): the registry's copy of the manifest
 * is the published one too.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CONDITION = '@cluster-session/source';
const BACKUP = 'package.json.checkout';
/**
 * Scripts kept: npm looks `postpack` and `postpublish` up in the manifest on disk once `prepack` has run, so
 * the published one must still name them (npm never runs either when installing). The rest (build, test,
 * prepack) only work inside this repository.
 */
const KEEP_SCRIPTS = new Set(['postpack', 'postpublish']);

type Json = Record<string, unknown>;

/** The exports map without the source condition, at any depth (subpaths, nested conditions). */
export function stripCondition(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripCondition);
  if (!value || typeof value !== 'object') return value;
  const out: Json = {};
  for (const [key, inner] of Object.entries(value)) if (key !== CONDITION) out[key] = stripCondition(inner);
  return out;
}

/** What `npm pack` writes into the tarball: the checkout's manifest less what only the checkout needs. */
export function publishedManifest(pkg: Json): Json {
  const out: Json = { ...pkg };
  if (out.exports) out.exports = stripCondition(out.exports);
  delete out.devDependencies;
  const scripts = Object.fromEntries(Object.entries((out.scripts ?? {}) as Record<string, string>).filter(([k]) => KEEP_SCRIPTS.has(k)));
  if (Object.keys(scripts).length) out.scripts = scripts;
  else delete out.scripts;
  if (JSON.stringify(out).includes(CONDITION)) throw new Error(`${String(pkg.name)}: the published package.json still names ${CONDITION}`);
  return out;
}

function restore(dir: string): boolean {
  const backup = path.join(dir, BACKUP);
  if (!fs.existsSync(backup)) return false;
  fs.renameSync(backup, path.join(dir, 'package.json'));
  return true;
}

function prepack(dir: string): void {
  // A pack interrupted before its postpack left the published manifest in place: start from the checkout's.
  if (restore(dir)) process.stderr.write(`pack-manifest: restored ${path.join(dir, 'package.json')} left by an interrupted pack\n`);
  const file = path.join(dir, 'package.json');
  const text = fs.readFileSync(file, 'utf8');
  const pkg = JSON.parse(text) as Json;
  // dist/ (JS, .d.ts and maps) of this package and of the workspace packages it references.
  if (fs.existsSync(path.join(dir, 'tsconfig.json'))) {
    const tsc = path.join(path.dirname(fileURLToPath(import.meta.resolve('typescript/package.json'))), 'bin', 'tsc');
    execFileSync(process.execPath, [tsc, '-b', dir], { stdio: 'inherit' });
  }
  const published = publishedManifest(pkg);
  fs.writeFileSync(path.join(dir, BACKUP), text);
  fs.writeFileSync(file, `${JSON.stringify(published, null, 2)}\n`);
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const [command] = process.argv.slice(2);
  const dir = process.cwd();
  if (command === 'prepack') prepack(dir);
  else if (command === 'postpack') {
    if (process.env.npm_command !== 'publish') restore(dir);
  } else if (command === 'postpublish') restore(dir);
  else if (command === 'restore') {
    const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
    for (const name of fs.readdirSync(path.join(root, 'packages'))) {
      if (restore(path.join(root, 'packages', name))) process.stderr.write(`pack-manifest: restored packages/${name}/package.json\n`);
    }
  } else {
    process.stderr.write('usage: node scripts/pack-manifest.ts prepack|postpack|postpublish|restore\n');
    process.exit(2);
  }
}
