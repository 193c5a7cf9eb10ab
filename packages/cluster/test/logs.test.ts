// --log-format: every line a worker writes reaches the primary's output in the chosen form, through a real
// cluster started by the real binary.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { freePort } from '@cluster-session/testkit';
import { cli, FIXTURES, get, scratch } from './helpers.ts';

const s = scratch();
after(() => s.cleanup());

async function run(format: 'text' | 'json') {
  const port = await freePort();
  const proc = cli(['start', `${FIXTURES}app.ts`, '-i', '1', '--port', String(port), '--name', `logs-${format}`, '--log-format', format], {
    ...s.env,
    FIXTURE_LOG_LINES: '1',
  });
  await proc.waitFor(/an error line/);
  await proc.waitFor(/\[1,2\]/);
  // The worker logs those lines as it starts, before it listens: until it is ready the primary answers 503 itself
  // (a JSON error without `value`), which a loaded CI machine once showed as LOG_FORMAT undefined.
  await proc.waitFor(/workers ready/);
  const env = (await get(`http://127.0.0.1:${port}/env?name=LOG_FORMAT`)).json;
  assert.equal(await proc.stop('SIGTERM'), 0);
  return { lines: proc.output().split('\n').filter(Boolean), env };
}

describe('--log-format', () => {
  it('json: one JSON object a line; a JSON line is merged, never wrapped; the workers get LOG_FORMAT=json', async () => {
    const { lines, env } = await run('json');
    const objects = lines.map((line) => {
      const o = JSON.parse(line) as Record<string, unknown>; // throws on any line that is not JSON
      assert.equal(typeof o, 'object');
      return o;
    });
    const app = objects.find((o) => o.msg === 'hello json')!;
    assert.ok(app, 'the app JSON line is there');
    // Its own fields as they were (its own time kept), plus who wrote it.
    assert.equal(app.level, 30);
    assert.equal(app.time, 1700000000000);
    assert.equal(app.reqId, 'r-1');
    assert.deepEqual(app.nested, { a: 1 });
    assert.equal(app.slot, 0);
    assert.equal(typeof app.pid, 'number');
    const plain = objects.find((o) => o.msg === 'plain "line" here')!;
    assert.equal(plain.level, 30);
    assert.equal(plain.slot, 0);
    assert.equal(plain.pid, app.pid);
    assert.equal(typeof plain.time, 'number');
    assert.equal(objects.find((o) => o.msg === 'an error line')!.level, 50);
    // A JSON value that is not an object stays a message.
    assert.equal(objects.find((o) => o.msg === '[1,2]')!.slot, 0);
    // The primary's own lines are JSON too, naming the cluster.
    assert.ok(objects.some((o) => o.cluster === 'logs-json' && /workers ready/.test(String(o.msg))));
    assert.equal(env.value, 'json');
  });

  it('text: every line timestamped and prefixed with slot and pid', async () => {
    const { lines, env } = await run('text');
    const iso = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z';
    assert.ok(lines.some((l) => new RegExp(`^${iso} \\[slot 0 pid \\d+\\] plain "line" here$`).test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => new RegExp(`^${iso} \\[slot 0 pid \\d+\\] \\{"level":30`).test(l)));
    assert.ok(lines.some((l) => new RegExp(`^${iso} \\[cluster-session logs-text\\] 1/1 workers ready`).test(l)));
    for (const l of lines) assert.match(l, new RegExp(`^${iso} `));
    assert.equal(env.value, 'text');
  });

  it('a wrong format is a usage error naming the allowed ones', async () => {
    const proc = cli(['start', `${FIXTURES}app.ts`, '--log-format', 'xml'], s.env);
    assert.equal(await proc.exited, 2);
    assert.match(proc.output(), /--log-format "xml" is not one of text, json/);
  });
});
