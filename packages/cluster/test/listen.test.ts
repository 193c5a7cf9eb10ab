import assert from 'node:assert/strict';
import path from 'node:path';
import { after, test } from 'node:test';
import { freePort } from '@cluster-session/testkit';
import { cli, FIXTURES, get, scratch } from './helpers.ts';

const s = scratch();
after(() => s.cleanup());
const entry = path.join(FIXTURES, 'express-app.ts');

test('listen(app) with the OS scheduling policy: an Express app served by both workers', async () => {
  const port = await freePort();
  const proc = cli(['start', entry, '-i', '2', '--port', String(port), '--policy', 'os', '--name', 'express-os'], s.env);
  after(() => proc.stop('SIGKILL'));
  await proc.waitFor(/2\/2 workers ready/);
  await proc.waitFor(new RegExp(`\\[slot 1 pid \\d+\\] express listening, address port ${port}`));
  const r = await get(`http://127.0.0.1:${port}/`);
  assert.equal(r.status, 200);
  assert.equal(r.json.sticky, '0');
});

test('listen(app) in sticky mode takes the sockets the primary hands over; a client keeps its worker', async () => {
  const port = await freePort();
  const proc = cli(['start', entry, '-i', '2', '--sticky', '--port', String(port), '--name', 'express-sticky'], s.env);
  after(() => proc.stop('SIGKILL'));
  await proc.waitFor(/2\/2 workers ready/);
  await proc.waitFor(new RegExp(`\\[slot 0 pid \\d+\\] express listening, address port ${port}`));
  for (const addr of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) {
    const a = await get(`http://127.0.0.1:${port}/`, { localAddress: addr });
    const b = await get(`http://127.0.0.1:${port}/`, { localAddress: addr });
    assert.equal(a.status, 200);
    assert.equal(a.json.sticky, '1');
    assert.equal(a.json.pid, b.json.pid);
  }
});
