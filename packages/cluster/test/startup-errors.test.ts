/**
 * Starting fails well: a configuration error every worker would throw is said once and ends the start (exit 2,
 * nothing restarted, nothing left running); after the start it parks the slot instead of a restart loop. A control
 * socket left by a SIGKILLed primary is replaced; a live primary's name is refused.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { freePort, oldNode, processTag, sleep, startProcess, until } from '@cluster-session/testkit';
import { BIN, cli, FIXTURES, get, runCli, scratch } from './helpers.ts';

const s = scratch();
after(() => s.cleanup());
const app = path.join(FIXTURES, 'app.ts');
const CONFIG_MESSAGE = 'SETTING is "x": expected "y". Fix: set SETTING=y.';

describe('a configuration error in the app', () => {
  test('at startup: printed once, without a stack, exit 2 at once, no worker restarted or left behind', async () => {
    const tag = processTag();
    const started = Date.now();
    const proc = cli(['start', app, '-i', '3', '--port', String(await freePort()), '--name', 'cfg-start'], { ...s.env, ...tag.env, FIXTURE_CONFIG_ERROR: CONFIG_MESSAGE });
    const code = await proc.exited;
    const out = proc.output();
    assert.equal(code, 2, out);
    assert.ok(Date.now() - started < 10_000, 'ended at once, not after readyTimeout or a restart loop');
    assert.equal(out.split(CONFIG_MESSAGE).length - 1, 1, `the message exactly once:\n${out}`);
    assert.match(out, /^cluster-session start: the app's configuration is invalid .*\[CS_ERR_FIXTURE_CONFIG\]\n$/);
    assert.doesNotMatch(out, /\n\s+at |restarting in|Node\.js v/, 'no stack, no restart, no worker crash print');
    assert.deepEqual(tag.leftovers(), []);
    assert.equal(existsSync(path.join(s.env.CLUSTER_SESSION_RUNTIME_DIR!, 'cfg-start.sock')), false, 'control socket removed');
  });

  test('after startup (a restarted worker refuses it): the slot is parked, not restarted; a reload says why it aborts', async () => {
    const port = await freePort();
    const marker = path.join(s.dir, 'config-broken');
    const proc = cli(['start', app, '-i', '2', '--port', String(port), '--name', 'cfg-later'], {
      ...s.env, FIXTURE_CONFIG_ERROR: CONFIG_MESSAGE, FIXTURE_CONFIG_ERROR_FILE: marker,
    });
    after(() => proc.stop('SIGKILL'));
    await proc.waitFor(/2\/2 workers ready/);
    writeFileSync(marker, '');
    const pid = Number(proc.output().match(/slot 1 ready \(pid (\d+)\)/)![1]);
    process.kill(pid, 'SIGKILL');
    await proc.waitFor(/slot 1 \(pid \d+\) refused its configuration: .*PARKED/);
    await sleep(1_000);
    assert.equal(proc.output().match(/refused its configuration/g)!.length, 1, 'one attempt, no loop');
    assert.equal((await get(`http://127.0.0.1:${port}/`)).status, 200, 'slot 0 still serves');
    const reload = await runCli(['reload', '--name', 'cfg-later'], s.env);
    assert.equal(reload.code, 1);
    assert.match(reload.out, /reload aborted at slot 0: refused its configuration: SETTING is "x"/);
    assert.equal(await proc.stop('SIGTERM'), 0);
  });

  test('any other error keeps Node\'s own report (stack and all) and the usual restart with backoff', async () => {
    const marker = path.join(s.dir, 'broken');
    writeFileSync(marker, '');
    const proc = cli(['start', app, '-i', '1', '--port', String(await freePort()), '--name', 'plain-crash'], { ...s.env, FIXTURE_BREAK_FILE: marker });
    assert.equal(await proc.exited, 1);
    assert.match(proc.output(), /Error: broken build: cannot start\n.*\n?\s+at /);
    assert.match(proc.output(), /no worker became ready/);
  });
});

describe('a stop signal during the start', () => {
  test('kills the starting workers, removes the control socket, exits 128+n; nothing left', async () => {
    const tag = processTag();
    const proc = cli(['start', app, '-i', '2', '--port', String(await freePort()), '--name', 'early-stop', '--ready-timeout', '60000'], {
      ...s.env, ...tag.env, FIXTURE_NEVER_LISTEN: '1',
    });
    const socket = path.join(s.env.CLUSTER_SESSION_RUNTIME_DIR!, 'early-stop.sock');
    await until('primary and two starting workers', () => existsSync(socket) && tag.leftovers().length === 3, 10_000);
    proc.child.kill('SIGHUP');
    await proc.waitFor(/SIGHUP during start: ignored/);
    const sent = Date.now();
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 143);
    assert.ok(Date.now() - sent < 5_000, 'at once, not after readyTimeout');
    assert.match(proc.output(), /SIGTERM during start: stopping the workers/);
    assert.equal(existsSync(socket), false, 'control socket removed');
    assert.deepEqual(tag.leftovers(), []);
  });
});

describe('control socket names', () => {
  test('a socket left by a SIGKILLed primary is replaced; the name of a live primary is refused', async () => {
    const tag = processTag();
    const env = { ...s.env, ...tag.env };
    const first = cli(['start', app, '-i', '1', '--port', String(await freePort()), '--name', 'stale'], env);
    await first.waitFor(/1\/1 workers ready/);
    const socket = path.join(s.env.CLUSTER_SESSION_RUNTIME_DIR!, 'stale.sock');
    process.kill(first.pid, 'SIGKILL');
    await first.exited;
    assert.ok(existsSync(socket), 'the killed primary left its socket file');
    // Its worker goes by itself (its IPC channel closed).
    await until('the orphaned worker exited', () => (tag.leftovers().length === 0 ? true : undefined), 5_000);

    const second = cli(['start', app, '-i', '1', '--port', String(await freePort()), '--name', 'stale'], env);
    after(() => second.stop('SIGKILL'));
    await second.waitFor(/1\/1 workers ready/);
    const status = await runCli(['status', '--name', 'stale'], s.env);
    assert.equal(status.code, 0, status.out);

    const third = await runCli(['start', app, '-i', '1', '--port', String(await freePort()), '--name', 'stale'], env);
    assert.equal(third.code, 1);
    assert.match(third.out, /a cluster already runs with control socket .*stale\.sock.*\[CS_ERR_CLUSTER_NAME_IN_USE\]/);
    assert.equal(await second.stop('SIGTERM'), 0);
    assert.deepEqual(tag.leftovers(), []);
  });
});

const old = oldNode();

test('the bin on an old Node: one line with what is needed, what was found and how to get Node 24', { skip: old ? false : 'no Node older than 22 here' }, async () => {
  const proc = startProcess(old!, [BIN, 'start', app]);
  assert.equal(await proc.exited, 1);
  const found = execFileSync(old!, ['--version'], { encoding: 'utf8' }).trim();
  assert.equal(proc.output(), `cluster-session needs Node.js 22.18 or newer (24 LTS recommended), found ${found}. Get Node 24: \`nvm install 24\`, or https://nodejs.org/en/download\n`);
});
