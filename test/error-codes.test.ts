// Every CS_ERR_* code written anywhere in packages/*/src has exactly one error class, is in its package's code
// union, and has exactly one row (naming that class) in the error table of docs/architecture.md.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CODE = /\bCS_ERR_[A-Z0-9]+(?:_[A-Z0-9]+)*(?![A-Z0-9_])/g;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

const packages = readdirSync(path.join(ROOT, 'packages')).filter((p) => {
  try {
    return readdirSync(path.join(ROOT, 'packages', p, 'src')).length > 0;
  } catch {
    return false;
  }
});

interface Declared {
  code: string;
  className: string;
  pkg: string;
}

const declared: Declared[] = [];
const written = new Map<string, string[]>();
const unions = new Map<string, Set<string>>();
for (const pkg of packages) {
  for (const file of sources(path.join(ROOT, 'packages', pkg, 'src'))) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/export class (\w+) extends \w+(?:<[^>]*>)? \{\n\s+static override readonly code = '(CS_ERR_[A-Z0-9_]+)'/g)) {
      declared.push({ className: m[1]!, code: m[2]!, pkg });
    }
    for (const m of text.matchAll(CODE)) written.set(m[0], [...(written.get(m[0]) ?? []), path.relative(ROOT, file)]);
    const union = /(?:export )?type \w+ErrorCode =([^;]+);/.exec(text);
    if (union) unions.set(pkg, new Set(union[1]!.match(CODE) ?? []));
  }
}

test('every code written in the sources has exactly one class', () => {
  assert.ok(declared.length > 30, `found ${declared.length} error classes`);
  for (const [code, files] of written) {
    const classes = declared.filter((d) => d.code === code);
    assert.equal(classes.length, 1, `${code} (written in ${[...new Set(files)].join(', ')}) has ${classes.length} classes: ${classes.map((c) => c.className).join(', ') || 'none'}`);
  }
});

test("each code is in its package's code union, and each union lists only its package's codes", () => {
  for (const pkg of new Set(declared.map((d) => d.pkg))) {
    const union = unions.get(pkg);
    assert.ok(union, `packages/${pkg} declares error classes but no XErrorCode union`);
    const mine = new Set(declared.filter((d) => d.pkg === pkg).map((d) => d.code));
    assert.deepEqual([...union].sort(), [...mine].sort(), `the code union of ${pkg}`);
  }
});

test('docs/architecture.md has exactly one row per code, naming its class', () => {
  const doc = readFileSync(path.join(ROOT, 'docs', 'architecture.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Error codes'), doc.indexOf('\n## ', doc.indexOf('## Error codes') + 1));
  const rows = [...section.matchAll(/^\| `(CS_ERR_[A-Z0-9_]+)` \| `(\w+)` \| ([\w-]+) \|/gm)].map((m) => ({ code: m[1]!, className: m[2]!, pkg: m[3]! }));
  for (const d of declared) {
    const mine = rows.filter((r) => r.code === d.code);
    assert.equal(mine.length, 1, `${d.code}: ${mine.length} rows in the error table`);
    assert.equal(mine[0]!.className, d.className, `${d.code}: the table names ${mine[0]!.className}, the code is ${d.className}'s`);
    assert.equal(mine[0]!.pkg, d.pkg, `${d.code}: package`);
  }
  for (const r of rows) assert.ok(declared.some((d) => d.code === r.code), `the table lists ${r.code}, which no class declares`);
});
