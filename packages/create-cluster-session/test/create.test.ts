/**
 * create-cluster-session from a checkout: the starter made from examples/express-app, as JavaScript and as
 * TypeScript, written into new directories; refusals with exit codes. The JavaScript starter's own test runs
 * here against the workspace packages (the template's JS is generated, so this is what proves it runs); the
 * round trip through a registry is scripts/release-check.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { main, packageName } from '../src/index.ts';

const BIN = fileURLToPath(new URL('../bin/create-cluster-session.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const dir = mkdtempSync(path.join(tmpdir(), 'cs-create-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function create(args: string[], cwd = dir) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const list = (root: string, rel = ''): string[] =>
  readdirSync(path.join(root, rel), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? list(root, path.join(rel, e.name)) : [path.join(rel, e.name)])).sort();

describe('create-cluster-session', () => {
  test('the JavaScript starter: no TypeScript left, published versions, valid JS', () => {
    const r = create(['my-app']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /Created my-app in .*my-app \(JavaScript, cluster-session \d/);
    assert.match(r.out, /cd my-app\n {2}npm install\n {2}npm start/);
    const app = path.join(dir, 'my-app');
    const files = list(app);
    for (const f of ['.gitignore', '.nvmrc', 'README.md', 'package.json', 'src/app.js', 'src/start.js', 'src/server.js', 'src/check-node.js', 'public/style.css', 'public/hops.js', 'public/favicon.svg', 'test/starter.test.js']) {
      assert.ok(files.includes(f), `${f} in ${files.join(', ')}`);
    }
    assert.deepEqual(files.filter((f) => f.endsWith('.ts')), []);
    assert.ok(!files.some((f) => /app\.test|start\.test/.test(f)), 'the repository-only suites are not shipped');
    const pkg = JSON.parse(readFileSync(path.join(app, 'package.json'), 'utf8'));
    assert.equal(pkg.name, 'my-app');
    assert.equal(pkg.private, true);
    assert.equal(pkg.scripts.start, 'node --import ./src/check-node.js src/start.js');
    assert.doesNotMatch(JSON.stringify(pkg), /conditions|workspace:|file:|link:|testkit/);
    for (const name of ['@cluster-session/session', '@cluster-session/cluster', '@cluster-session/balancer', '@cluster-session/cli']) {
      assert.equal(pkg.dependencies[name], `^${VERSION}`, name);
    }
    assert.ok(pkg.dependencies.express);
    for (const f of files.filter((f) => f.endsWith('.js'))) {
      execFileSync(process.execPath, ['--check', path.join(app, f)]);
      const text = readFileSync(path.join(app, f), 'utf8');
      assert.doesNotMatch(text, /from '\.{1,2}\/[^']+\.ts'|^import type |^export (interface|type) |\bas unknown as\b|import \{\} from|, \{\} from|__cluster_session_blank__/m, `${f} has no TypeScript left`);
    }
    // Blank lines survive the conversion: a starter is read.
    assert.match(readFileSync(path.join(app, 'src/start.js'), 'utf8'), /\n\n/);
    assert.match(readFileSync(path.join(app, 'README.md'), 'utf8'), /^# my-app\n[\s\S]*src\/app\.js/);
  });

  test('--typescript: the example sources as they are, a tsconfig, typecheck in npm test', () => {
    const r = create(['ts-app', '--typescript']);
    assert.equal(r.code, 0, r.err);
    const app = path.join(dir, 'ts-app');
    const files = list(app);
    assert.ok(files.includes('tsconfig.json') && files.includes('src/app.ts') && files.includes('test/starter.test.ts'));
    assert.equal(readFileSync(path.join(app, 'src/app.ts'), 'utf8'), readFileSync(path.join(ROOT, 'examples/express-app/src/app.ts'), 'utf8'), 'one source: the example');
    const pkg = JSON.parse(readFileSync(path.join(app, 'package.json'), 'utf8'));
    assert.equal(pkg.scripts.start, 'node --import ./src/check-node.js src/start.ts');
    assert.match(pkg.scripts.test, /^tsc && node --test/);
    assert.ok(pkg.devDependencies.typescript && pkg.devDependencies['@types/express'] && pkg.devDependencies['@types/node']);
  });

  test('refuses a non-empty directory and a file, writing nothing', () => {
    mkdirSync(path.join(dir, 'taken'));
    writeFileSync(path.join(dir, 'taken', 'notes.txt'), 'mine');
    const r = create(['taken']);
    assert.equal(r.code, 1);
    assert.match(r.err, /^create-cluster-session: .*taken is not empty \(notes\.txt\): nothing was written\. Choose a new directory name, or empty it first\.\n$/);
    assert.deepEqual(readdirSync(path.join(dir, 'taken')), ['notes.txt']);
    writeFileSync(path.join(dir, 'a-file'), '');
    assert.match(create(['a-file']).err, /a-file exists and is not a directory: nothing was written/);
    // An empty directory is fine (e.g. a fresh clone target, or `.` in a new folder).
    mkdirSync(path.join(dir, 'empty'));
    assert.equal(create(['.'], path.join(dir, 'empty')).code, 0);
    assert.equal(JSON.parse(readFileSync(path.join(dir, 'empty', 'package.json'), 'utf8')).name, 'empty');
  });

  test('usage errors exit 2 with one line; --help and --version', async () => {
    for (const [args, message] of [
      [[], /which directory\? e\.g\. npm create cluster-session@latest my-app/],
      [['a', 'b'], /one directory, got 2: a b/],
      [['x', '--typo'], /Unknown option '--typo'.*\(see --help\)/],
      [['x', '--ts', '--js'], /--typescript and --javascript exclude each other/],
    ] as const) {
      const lines: string[] = [];
      assert.equal(await main([...args], { out: () => {}, err: (l) => lines.push(l) }), 2, String(args));
      assert.equal(lines.length, 1);
      assert.match(lines[0]!, message);
    }
    assert.match(create(['--help']).out, /Usage: npm create cluster-session@latest <directory> \[-- --typescript\]/);
    assert.equal(create(['--version']).out.trim(), VERSION);
  });

  test('package names from directory names', () => {
    assert.equal(packageName('/x/My App'), 'my-app');
    assert.equal(packageName('/x/.hidden'), 'hidden');
  });

  test("the JavaScript starter's own npm test passes (against the workspace packages)", { timeout: 120_000 }, () => {
    // Inside the repository, so its imports resolve to the workspace packages (their sources, by the condition).
    const inRepo = mkdtempSync(path.join(ROOT, 'packages', 'create-cluster-session', '.tmp-'));
    try {
      const target = path.join(inRepo, 'app');
      assert.equal(create([target]).code, 0);
      const r = spawnSync(process.execPath, ['--conditions=@cluster-session/source', '--test', 'test/starter.test.js'], {
        cwd: target,
        encoding: 'utf8',
        timeout: 110_000,
        // Not as a subtest of this run: a child that inherits NODE_TEST_CONTEXT reports to the parent's runner.
        env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')),
      });
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /\bpass 4\b/);
      assert.match(r.stdout, /\bfail 0\b/);
    } finally {
      rmSync(inRepo, { recursive: true, force: true });
    }
  });
});
