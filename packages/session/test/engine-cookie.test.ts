// Store mode verifies the session cookie itself (engine.ts: one HMAC, and for an id seen before a constant-time
// compare against what it verified then). Both must accept and refuse exactly what express-session does: every
// cookie below is sent to express-session and to ours over real HTTP, twice (the second time through the cache of
// verified ids), and each side must recognise the session or start a fresh one alike.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import express, { type RequestHandler } from 'express';
import expressSession, { MemoryStore } from 'express-session';
import { request } from '@cluster-session/testkit';
import session from '@cluster-session/session/express-session';
import { Signatures } from '../src/engine.ts';

const SECRETS = ['new-secret-0123456789abcdef', 'old-secret-0123456789abcdef'];
const NAME = 'connect.sid';
const sign = (id: string, secret: string) => `s:${id}.${createHmac('sha256', secret).update(id).digest('base64').replace(/=+$/, '')}`;

interface App {
  url: string;
  close(): Promise<void>;
}

async function listen(mw: RequestHandler, close: () => Promise<void> = async () => {}): Promise<App> {
  const app = express();
  app.use(mw);
  app.get('/login', (req, res) => {
    (req.session as unknown as { user: string }).user = 'alice';
    res.json({ id: req.sessionID });
  });
  app.get('/whoami', (req, res) => void res.json({ user: (req.session as unknown as { user?: string }).user ?? null, id: req.sessionID }));
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await close();
    },
  };
}

/** Cookie headers made from one side's own login: each says which session it should open (or none). */
function variants(id: string): Array<[string, string, boolean]> {
  const good = sign(id, SECRETS[0]!);
  const enc = encodeURIComponent;
  const sig = good.slice(good.lastIndexOf('.') + 1);
  const flip = (c: string) => (c === 'A' ? 'B' : 'A');
  return [
    ['the cookie as set', `${NAME}=${enc(good)}`, true],
    ['signed with the second secret (rotation)', `${NAME}=${enc(sign(id, SECRETS[1]!))}`, true],
    ['quoted', `${NAME}="${enc(good)}"`, true],
    ['among other cookies', `a=1; ${NAME}=${enc(good)}; b=2`, true],
    ['the last character of the signature changed', `${NAME}=${enc(good.slice(0, -1) + flip(good.at(-1)!))}`, false],
    ['the signature one character short', `${NAME}=${enc(good.slice(0, -1))}`, false],
    ['the signature with base64 padding', `${NAME}=${enc(`${good}=`)}`, false],
    ['no s: prefix', `${NAME}=${enc(good.slice(2))}`, false],
    ['signed with an unknown secret', `${NAME}=${enc(sign(id, 'not-our-secret-0123456789'))}`, false],
    ['another id under this signature', `${NAME}=${enc(`s:${id.slice(0, -1)}${flip(id.at(-1)!)}.${sig}`)}`, false],
    ['no signature at all', `${NAME}=${enc(`s:${id}`)}`, false],
    ['a forged one first, the real one second (the first counts)', `${NAME}=${enc(good.slice(0, -1) + flip(good.at(-1)!))}; ${NAME}=${enc(good)}`, false],
    ['empty', `${NAME}=`, false],
  ];
}

describe('store mode: the session cookie is accepted and refused as express-session does', () => {
  let reference: App;
  let ours: App;
  let oursMw: ReturnType<typeof session>;
  before(async () => {
    reference = await listen(expressSession({ secret: SECRETS, resave: false, saveUninitialized: false, store: new MemoryStore() }));
    oursMw = session({ secret: SECRETS, resave: false, saveUninitialized: false });
    ours = await listen(oursMw, () => oursMw.close());
  });
  after(async () => {
    await reference?.close();
    await ours?.close();
  });

  const loginOn = async (app: App) => (await request(`${app.url}/login`)).json.id as string;

  test('every variant, twice on each side (the second time from the verified cache)', async () => {
    const refId = await loginOn(reference);
    const ourId = await loginOn(ours);
    const refCases = variants(refId);
    const ourCases = variants(ourId);
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < refCases.length; i++) {
        const [what, refCookie, opens] = refCases[i]!;
        const ref = (await request(`${reference.url}/whoami`, { headers: { cookie: refCookie } })).json;
        const got = (await request(`${ours.url}/whoami`, { headers: { cookie: ourCases[i]![1] } })).json;
        assert.equal(ref.user !== null, opens, `express-session itself, ${what}: the test's expectation`);
        assert.equal(got.user !== null, ref.user !== null, `round ${round}, ${what}: ours ${got.user ? 'opened' : 'refused'} it, express-session did not`);
        if (opens) assert.equal(got.id, ourId, `${what}: the same session`);
        else assert.notEqual(got.id, ourId, `${what}: a fresh session, not the signed one`);
      }
    }
  });
});

describe('Signatures: the cache of checked and made signatures', () => {
  test('holds at most its limit, oldest out; an id that fell out is verified again by HMAC', () => {
    const v = new Signatures(SECRETS, 3);
    const ids = ['id-one', 'id-two', 'id-three', 'id-four', 'id-five'];
    for (const id of ids) assert.equal(v.unsign(sign(id, SECRETS[0]!).slice(2)), id);
    assert.equal(v.size, 3);
    // id-one was evicted: still accepted (the HMAC again), and its forgery still refused.
    assert.equal(v.unsign(sign('id-one', SECRETS[0]!).slice(2)), 'id-one');
    assert.equal(v.unsign(`${sign('id-one', SECRETS[0]!).slice(2, -1)}x`), false);
  });

  test('a cached id with a forged signature of the right length is refused', () => {
    const v = new Signatures(SECRETS);
    const good = sign('cached-id', SECRETS[1]!).slice(2);
    assert.equal(v.unsign(good), 'cached-id');
    const forged = `${good.slice(0, -2)}${good.at(-2) === 'Q' ? 'R' : 'Q'}${good.at(-1)}`;
    assert.equal(forged.length, good.length);
    assert.equal(v.unsign(forged), false);
    assert.equal(v.unsign(good), 'cached-id');
    // The same id under the other secret is another string, which express-session accepts too: the HMAC checks it.
    assert.equal(v.unsign(sign('cached-id', SECRETS[0]!).slice(2)), 'cached-id');
  });

  test('sign() is cookie-signature\'s with the first secret, from the cache or not, and what it made verifies', () => {
    const v = new Signatures(SECRETS, 2);
    for (const id of ['a-1', 'a-2', 'a-3', 'a-1']) assert.equal(`s:${v.sign(id)}`, sign(id, SECRETS[0]!));
    // Verified under the second secret, the id still signs with the first.
    assert.equal(v.unsign(sign('b-1', SECRETS[1]!).slice(2)), 'b-1');
    assert.equal(`s:${v.sign('b-1')}`, sign('b-1', SECRETS[0]!));
    assert.equal(v.unsign(v.sign('c-1')), 'c-1');
    assert.equal(v.size, 2);
  });
});
