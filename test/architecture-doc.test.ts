// docs/architecture.md keeps one line per source file of each package: a file added, moved or removed without
// its line fails here.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const doc = readFileSync(path.join(ROOT, 'docs', 'architecture.md'), 'utf8');

function files(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(path.join(dir, e.name), base) : e.name.endsWith('.ts') ? [path.relative(base, path.join(dir, e.name))] : [],
  );
}

for (const pkg of readdirSync(path.join(ROOT, 'packages'))) {
  let src: string[];
  try {
    src = files(path.join(ROOT, 'packages', pkg, 'src'));
  } catch {
    continue;
  }
  test(`docs/architecture.md describes every file of packages/${pkg}/src, and only those`, () => {
    const start = doc.search(new RegExp(`^### ${pkg}\\b`, 'm'));
    assert.ok(start >= 0, `a "### ${pkg}" section`);
    const end = doc.indexOf('\n#', start + 1);
    const rows = [...doc.slice(start, end).matchAll(/^\| ([\w./-]+\.ts) \| (.+) \|$/gm)].map((m) => m[1]!);
    assert.deepEqual([...rows].sort(), [...src].sort());
  });
}
