// The guardrail of scripts/modules.ts on a small tree of its own: it must catch an import cycle (type-only
// imports included), an export nobody imports, and a workspace import missing from package.json.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SCRIPT = new URL('../scripts/modules.ts', import.meta.url).pathname;

/** Runs the check on a tree of `files` (removed afterwards). */
async function checkTree(files: Record<string, string>): Promise<{ code: number; out: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cs-modules-'));
  try {
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      writeFileSync(path.join(dir, name), text);
    }
    return await check(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const pkg = (name: string, deps: Record<string, string> = {}) =>
  JSON.stringify({ name, exports: { '.': { '@cluster-session/source': './src/index.ts' } }, dependencies: deps });

async function check(dir: string): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [SCRIPT, 'check', '--root', dir]);
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}

test('a clean tree passes', async () => {
  const r = await checkTree({
    'packages/a/package.json': pkg('@cluster-session/a', { '@cluster-session/b': '0.1.0' }),
    'packages/a/src/index.ts': "export { f } from './f.ts';\n",
    'packages/a/src/f.ts': "import { g } from '@cluster-session/b';\nexport const f = () => g();\n",
    'packages/b/package.json': pkg('@cluster-session/b'),
    'packages/b/src/index.ts': 'export const g = () => 1;\n',
  });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /0 import cycle\(s\)/);
});

test('a cycle (through a type-only import), an unused export and an undeclared dependency all fail it', async () => {
  const r = await checkTree({
    'packages/a/package.json': pkg('@cluster-session/a'),
    'packages/a/src/index.ts': "export { x } from './x.ts';\n",
    'packages/a/src/x.ts': "import type { Y } from './y.ts';\nimport { g } from '@cluster-session/b';\nexport const x = (y: Y) => g(y);\nexport const unused = 1;\n",
    'packages/a/src/y.ts': "import { x } from './x.ts';\nexport type Y = number;\nexport const again = () => x(1);\n",
    'packages/b/package.json': pkg('@cluster-session/b'),
    'packages/b/src/index.ts': 'export const g = (n: number) => n;\n',
  });
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /import cycle: packages\/a\/src\/x\.ts -> packages\/a\/src\/y\.ts/);
  assert.match(r.out, /packages\/a\/src\/x\.ts: export unused is imported by no other file/);
  assert.match(r.out, /packages\/a\/src\/y\.ts: export again is imported by no other file/);
  assert.match(r.out, /imports @cluster-session\/b, which is not in @cluster-session\/a's dependencies/);
});
