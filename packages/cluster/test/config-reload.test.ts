// `start --config`, `reload` re-reading it, `reload --update-env` and `scale N`, all through the real binary,
// under a load that never stops: the figure that matters is 0 failed requests, and that the workers see the
// new values.
import assert from 'node:assert/strict';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { freePort, sleep, steadyLoad } from '@cluster-session/testkit';
import { cli, FIXTURES, get, runCli, scratch } from './helpers.ts';

const s = scratch();
after(() => s.cleanup());

/** What the workers say on fresh connections (each may land on another worker): the set of values seen. */
async function seen(port: number, name: string, tries = 12): Promise<Set<string | null>> {
  const values = new Set<string | null>();
  for (let i = 0; i < tries; i++) values.add((await get(`http://127.0.0.1:${port}/env?name=${name}`)).json.value);
  return values;
}

async function workers(name: string): Promise<number> {
  const r = await runCli(['status', '--json', '--name', name], s.env);
  assert.equal(r.code, 0, r.out);
  return (JSON.parse(r.out) as unknown[]).length;
}

describe('start --config, reload --update-env, scale', () => {
  test('under load: a new env from the file, the caller env, scale 3 and 1, refused files; 0 failed requests', async () => {
    const port = await freePort();
    const file = path.join(s.dir, 'cluster.yaml');
    const config = (extra: object) => stringify({ entry: path.join(FIXTURES, 'app.ts'), workers: 2, port, name: 'cfg', killTimeout: 5000, env: { GREETING: 'one' }, ...extra });
    writeFileSync(file, config({}));
    const proc = cli(['start', '--config', file], s.env);
    after(() => proc.stop('SIGKILL'));
    await proc.waitFor(/2\/2 workers ready/);
    assert.deepEqual(await seen(port, 'GREETING'), new Set(['one']));

    const load = steadyLoad(`http://127.0.0.1:${port}/`, 6);
    // However the test ends, the load stops (or its loops would keep the test process alive).
    after(() => load.stop());
    await sleep(500);

    // 1. The file changes; `reload` re-reads it: every new worker sees the new value.
    writeFileSync(file, config({ env: { GREETING: 'two' } }));
    const r1 = await runCli(['reload', '--name', 'cfg'], s.env);
    assert.equal(r1.code, 0, r1.out);
    assert.deepEqual(await seen(port, 'GREETING'), new Set(['two']));

    // 2. --update-env: the caller's environment reaches the new workers; one it unset is gone.
    assert.deepEqual(await seen(port, 'FROM_SHELL'), new Set([null]));
    const r2 = await runCli(['reload', '--update-env', '--name', 'cfg'], { ...s.env, FROM_SHELL: 'hello' });
    assert.equal(r2.code, 0, r2.out);
    assert.deepEqual(await seen(port, 'FROM_SHELL'), new Set(['hello']));
    assert.deepEqual(await seen(port, 'GREETING'), new Set(['two']), "the file's env still applies over it");
    const r3 = await runCli(['reload', '--update-env', '--name', 'cfg'], s.env);
    assert.equal(r3.code, 0, r3.out);
    assert.deepEqual(await seen(port, 'FROM_SHELL'), new Set([null]));

    // 3. scale up and down at runtime, through the reload queue.
    const up = await runCli(['scale', '3', '--name', 'cfg'], s.env);
    assert.equal(up.code, 0, up.out);
    assert.match(up.out, /scaled 2 -> 3 workers/);
    assert.equal(await workers('cfg'), 3);
    const down = await runCli(['scale', '1', '--name', 'cfg'], s.env);
    assert.equal(down.code, 0, down.out);
    assert.equal(await workers('cfg'), 1);
    // A reload keeps the scaled count while the file's workers value is unchanged...
    const r4 = await runCli(['reload', '--name', 'cfg'], s.env);
    assert.equal(r4.code, 0, r4.out);
    assert.equal(await workers('cfg'), 1);
    // ...and takes the file's when it changes.
    writeFileSync(file, config({ env: { GREETING: 'two' }, workers: 3 }));
    const r5 = await runCli(['reload', '--name', 'cfg'], s.env);
    assert.equal(r5.code, 0, r5.out);
    assert.equal(await workers('cfg'), 3);

    // 4. Refused files: nothing changes, the workers keep serving.
    const pidsBefore = (await runCli(['status', '--json', '--name', 'cfg'], s.env)).out;
    writeFileSync(file, config({ workers: 'lots' }));
    const bad = await runCli(['reload', '--name', 'cfg'], s.env);
    assert.equal(bad.code, 2, bad.out);
    assert.match(bad.out, /reload refused, the running workers stay: .*option workers .*"lots"/);
    writeFileSync(file, config({ workers: 3, port: port + 1 }));
    const moved = await runCli(['reload', '--name', 'cfg'], s.env);
    assert.notEqual(moved.code, 0);
    assert.match(moved.out, /option port cannot change while the cluster runs/);
    writeFileSync(file, 'entry: [');
    const broken = await runCli(['reload', '--name', 'cfg'], s.env);
    assert.match(broken.out, /not valid YAML/);
    const pidsAfter = (await runCli(['status', '--json', '--name', 'cfg'], s.env)).out;
    assert.deepEqual(JSON.parse(pidsAfter).map((r: { pid: number }) => r.pid), JSON.parse(pidsBefore).map((r: { pid: number }) => r.pid));

    await sleep(300);
    const { ok, failures } = await load.stop();
    assert.deepEqual(failures, [], `${failures.length} failed of ${ok + failures.length}`);
    assert.ok(ok > 100, `${ok} requests`);
    console.log(`config reload, update-env, scale under load: ${ok} requests, ${failures.length} failed`);
    assert.equal(await proc.stop('SIGTERM'), 0);
  });
});
