/**
 * Benchmarks do not run in `npm test`, but their harness does, in smoke mode (a second or so per contender), so it
 * cannot rot: every scenario must start its subjects and peers, drive them and print a figure.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { startNode } from '@cluster-session/testkit';

const RUN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bench', 'run.ts');

test('npm run bench -- --smoke: every scenario produces figures', { timeout: 300_000 }, async () => {
  const proc = startNode([RUN, '--smoke']);
  const code = await proc.exited;
  const out = proc.output();
  assert.equal(code, 0, out);
  for (const scenario of ['balancer', 'session', 'jwt', 'cluster-scaling', 'reload', 'sticky', 'edge']) {
    const rows = out.split('\n').filter((l) => l.startsWith(`| ${scenario} |`));
    assert.ok(rows.length > 0, `no row for ${scenario}:\n${out}`);
    assert.ok(rows.some((r) => /\| \d[\d.]* ?(req\/s|ms|MiB|MB)? \|/.test(r)), `${scenario} printed no figure:\n${rows.join('\n')}`);
  }
});
