import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PORTS = new URL('../src/ports.ts', import.meta.url).href;

test('freePort: two test files of one run (sibling processes) never get the same port', async () => {
  // Each child picks 300 ports; by chance alone (12,000 ports) the two lists would share about 7.
  const pick = `const { freePort } = await import(${JSON.stringify(PORTS)}); const out = []; for (let i = 0; i < 300; i++) out.push(await freePort()); console.log(JSON.stringify(out));`;
  const [a, b] = await Promise.all([0, 1].map(() => run(process.execPath, ['--input-type=module', '-e', pick], { encoding: 'utf8' })));
  const first = JSON.parse(a!.stdout) as number[];
  const second = new Set(JSON.parse(b!.stdout) as number[]);
  assert.equal(first.length, 300);
  assert.equal(second.size, 300);
  assert.deepEqual(first.filter((p) => second.has(p)), []);
});
