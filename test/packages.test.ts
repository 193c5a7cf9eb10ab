// What `npm publish` of every public package relies on: one version for all, workspace dependencies pinned to
// it, the fields a registry page and an installer read, the LICENSE, and a real `npm pack` whose tarball has
// dist/ (JS, .d.ts, maps) and a package.json without the `@cluster-session/source` condition, leaving the
// checkout's package.json as it was. The full round trip through a registry is scripts/release-check.ts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { publishedManifest } from '../scripts/pack-manifest.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
type Manifest = Record<string, any>;
const read = (file: string): Manifest => JSON.parse(readFileSync(file, 'utf8'));
const root = read(path.join(ROOT, 'package.json'));
const all = readdirSync(path.join(ROOT, 'packages'))
  .filter((d) => existsSync(path.join(ROOT, 'packages', d, 'package.json')))
  .map((d) => ({ dir: path.join(ROOT, 'packages', d), pkg: read(path.join(ROOT, 'packages', d, 'package.json')) }));
const published = all.filter((p) => !p.pkg.private);
const names = new Set(all.map((p) => p.pkg.name as string));

test('every package but the testkit is public, at one version', () => {
  assert.deepEqual(all.filter((p) => p.pkg.private).map((p) => p.pkg.name), ['@cluster-session/testkit']);
  assert.ok(published.length >= 8, `${published.length} public packages`);
  for (const { pkg } of published) assert.equal(pkg.version, root.version, `${pkg.name}'s version`);
});

test('workspace dependencies are pinned to that version; none on a private package', () => {
  for (const { pkg } of published) {
    for (const [dep, range] of Object.entries<string>(pkg.dependencies ?? {})) {
      if (!names.has(dep)) continue;
      assert.notEqual(dep, '@cluster-session/testkit', `${pkg.name} depends on the private testkit`);
      assert.equal(range, root.version, `${pkg.name} -> ${dep}`);
    }
  }
});

test('the fields a registry and an installer read; LICENSE is the root one', () => {
  const license = readFileSync(path.join(ROOT, 'LICENSE'), 'utf8');
  for (const { dir, pkg } of published) {
    assert.equal(pkg.license, 'MIT', pkg.name);
    assert.equal(readFileSync(path.join(dir, 'LICENSE'), 'utf8'), license, `${pkg.name}/LICENSE`);
    assert.equal(pkg.engines?.node, root.engines.node, `${pkg.name} engines`);
    assert.equal(pkg.repository?.directory, path.relative(ROOT, dir), `${pkg.name} repository.directory`);
    assert.equal(pkg.publishConfig?.access, 'public', `${pkg.name} publishConfig.access`);
    for (const f of ['dist', 'README.md', 'LICENSE']) assert.ok(pkg.files.includes(f), `${pkg.name} files has ${f}`);
    assert.match(pkg.scripts?.prepack ?? '', /pack-manifest\.ts prepack/, `${pkg.name} builds in prepack`);
    assert.match(pkg.scripts?.postpack ?? '', /pack-manifest\.ts postpack/, `${pkg.name} restores in postpack`);
    assert.match(pkg.scripts?.postpublish ?? '', /pack-manifest\.ts postpublish/, `${pkg.name} restores after publish`);
    for (const [sub, target] of Object.entries<any>(pkg.exports)) {
      if (typeof target === 'string') continue;
      assert.ok(target.types?.startsWith('./dist/') && target.default?.startsWith('./dist/'), `${pkg.name} exports ${sub} -> dist`);
    }
    for (const bin of Object.values<string>(pkg.bin ?? {})) assert.ok(pkg.files.some((f: string) => bin.startsWith(`./${f}/`)), `${pkg.name} ships its bin ${bin}`);
  }
});

test('one repository for all', () => {
  assert.equal(new Set(published.map((p) => p.pkg.repository?.url)).size, 1);
});

test('the session package brings the types a TypeScript user needs', () => {
  const session = published.find((p) => p.pkg.name === '@cluster-session/session')!.pkg;
  assert.ok(session.dependencies['@types/express-session'], '@types/express-session is a dependency');
});

test('the published manifest drops the source condition at every depth, devDependencies and repo-only scripts', () => {
  const out = publishedManifest({
    name: 'x',
    exports: { '.': { '@cluster-session/source': './src/index.ts', types: './dist/index.d.ts', default: './dist/index.js' }, './a': { node: { '@cluster-session/source': './src/a.ts', default: './dist/a.js' } } },
    scripts: { build: 'tsc -b', prepack: 'p', postpack: 'q', postpublish: 'r' },
    devDependencies: { '@cluster-session/testkit': '^0.1.0' },
  });
  assert.deepEqual(out.exports, { '.': { types: './dist/index.d.ts', default: './dist/index.js' }, './a': { node: { default: './dist/a.js' } } });
  assert.deepEqual(out.scripts, { postpack: 'q', postpublish: 'r' });
  assert.equal(out.devDependencies, undefined);
});

test('npm pack of a package: dist with maps and types, no source condition, checkout untouched', { timeout: 120_000 }, () => {
  const dir = path.join(ROOT, 'packages', 'hash');
  const before = readFileSync(path.join(dir, 'package.json'), 'utf8');
  const out = mkdtempSync(path.join(tmpdir(), 'cs-pack-'));
  try {
    const npm = process.env.npm_execpath;
    const [cmd, args] = npm && npm.endsWith('.js') ? [process.execPath, [npm]] : ['npm', []];
    execFileSync(cmd, [...args, 'pack', '--pack-destination', out, '--silent'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const tarball = readdirSync(out).find((f) => f.endsWith('.tgz'))!;
    assert.ok(tarball, 'a tarball');
    const files = execFileSync('tar', ['tzf', path.join(out, tarball)], { encoding: 'utf8' }).split('\n');
    for (const f of ['package/LICENSE', 'package/dist/index.js', 'package/dist/index.js.map', 'package/dist/index.d.ts', 'package/dist/index.d.ts.map']) {
      assert.ok(files.includes(f), `${f} in ${tarball}`);
    }
    const manifest = execFileSync('tar', ['xzf', path.join(out, tarball), '-O', 'package/package.json'], { encoding: 'utf8' });
    assert.doesNotMatch(manifest, /@cluster-session\/source|src\/index\.ts/);
    assert.equal(readFileSync(path.join(dir, 'package.json'), 'utf8'), before, 'package.json restored after the pack');
    assert.equal(existsSync(path.join(dir, 'package.json.checkout')), false);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
