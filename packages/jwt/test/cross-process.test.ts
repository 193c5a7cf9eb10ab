// Statelessness across workers: a token issued here is accepted by another OS process that holds the same keys.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { request, startNode, type Proc } from '@cluster-session/testkit';
import { keyRingFromEnv } from '../src/index.ts';
import { buildApp, listen, type Running } from './fixtures/app.ts';

const { privateKey } = generateKeyPairSync('ed25519');
const env = { JWT_KEYS: JSON.stringify([{ ...privateKey.export({ format: 'jwk' }), kid: 'ed-2026' }]) };
const server = fileURLToPath(new URL('./fixtures/server.ts', import.meta.url));

let child: Proc;
let childUrl: string;
let here: Running;
before(async () => {
  child = startNode([server], { env: { ...process.env, ...env } });
  childUrl = (await child.waitFor(/listening (\S+)/))[1]!;
  here = await listen(buildApp({ ring: keyRingFromEnv(env), ttl: 600 }));
});
after(async () => {
  await here.close();
  await child.stop();
});

test('login in this process, then the session hops between two processes with the same JWT_KEYS', async () => {
  const login = await request(`${here.url}/login`, { method: 'POST', body: { user: 'alice' } });
  let cookie = `session=${login.cookies.session}`;
  const pids = new Set<number>();
  for (let i = 1; i <= 4; i++) {
    const url = i % 2 ? childUrl : here.url;
    const me = await request(`${url}/me`, { headers: { cookie } });
    assert.equal(me.status, 200, `hop ${i}: ${me.body}`);
    assert.deepEqual([me.json.user, me.json.hits, me.json.id], ['alice', i, login.json.id]);
    pids.add(me.json.pid);
    cookie = `session=${me.cookies.session}`;
  }
  assert.deepEqual(pids, new Set([child.pid, process.pid]));
});

test('a process with other keys refuses the token (401, not 500)', async () => {
  const other = startNode([server], { env: { ...process.env, JWT_SECRET: 'z'.repeat(43) } });
  try {
    const otherUrl = (await other.waitFor(/listening (\S+)/))[1]!;
    const login = await request(`${here.url}/login`, { method: 'POST', body: { user: 'alice' } });
    const me = await request(`${otherUrl}/me`, { headers: { cookie: `session=${login.cookies.session}` } });
    assert.equal(me.status, 401);
  } finally {
    await other.stop();
  }
});
