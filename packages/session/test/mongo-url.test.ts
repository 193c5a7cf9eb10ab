// Issue 19 item 1, MongoDB: a replica-set URL is used as written (readPreference, w and the other options reach
// the driver, none overridden by the store's defaults); a wrong or partial URL is a startup error naming the part;
// options that can lose or hide a login are warned about.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { CommandStartedEvent, MongoClient } from 'mongodb';
import { ConfigError, clusterSession, resolveConfig } from '@cluster-session/session';
import { cookieHeader, request, startMongo } from '@cluster-session/testkit';
import { serve } from './fixtures/app.ts';
import { refusedWith } from './fixtures/config-error.ts';

const SECRET = 'mongo-url-test-secret-0123456789';
const quiet = { warn: () => {}, error: () => {} };

const refused = (url: string, part: RegExp) => refusedWith(url, () => resolveConfig({ secret: SECRET, store: 'mongo' }, { MONGO_URL: url }), /MONGO_URL/, part);

describe('MongoDB URLs', () => {
  it('a wrong or partial URL is a startup error naming the part that is wrong, never the password', () => {
    refused('postgres://db/app', /not a mongodb:\/\/ or mongodb\+srv:\/\/ URL/);
    refused('mongodb://', /names no host/);
    refused('mongodb://m1:27017,,m3:27017/app?replicaSet=rs0', /host #2 is empty/);
    refused('mongodb://m1:27017,m2:270x7/app', /host #2 "m2:270x7" has port "270x7"/);
    refused('mongodb://m1/app?replicaSet=', /replicaSet is empty/);
    refused('mongodb://m1/app?readPreference=Secondary', /readPreference "Secondary" is not one of primary, primaryPreferred/);
    refused('mongodb://m1/app?readPreference=secondary&maxStalenessSeconds=10', /maxStalenessSeconds "10" must be -1 \(none\) or at least 90/);
    refused('mongodb://m1/app?maxStalenessSeconds=120', /needs a readPreference other than primary/);
    refused('mongodb://m1/app?w=-1', /w "-1" is not a write concern/);
    refused('mongodb://m1,m2/app?directConnection=true', /directConnection=true talks to one server, but 2 hosts/);
    refused('mongodb+srv://cluster0.example.net:27017/app', /without a port/);
    refused('mongodb://m1/my.app', /database name "my.app"/);
    const message = refused('mongodb://app:hunter2-secret@m1:bad/app', /port "bad"/);
    assert.ok(!message.includes('hunter2'), message);
  });

  it('an option the driver refuses is a ConfigError at startup too, naming the variable and the driver reason', () => {
    const e = (() => {
      try {
        clusterSession({ secret: SECRET, store: { type: 'mongo', url: 'mongodb://app:hunter2-secret@m1/app?replicaSett=rs0' }, logger: quiet });
      } catch (err) {
        return err as Error;
      }
      return undefined;
    })();
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.match(e.message, /MONGO_URL \(or store\.url\).*option replicasett is not supported/i);
    assert.ok(!e.message.includes('hunter2'), e.message);
  });

  it('readPreference from secondaries and w=0 are accepted, with one warning each at startup', async () => {
    const warnings: string[] = [];
    const sessions = clusterSession({
      secret: SECRET,
      store: { type: 'mongo', url: 'mongodb://m1:27017,m2:27017/app?replicaSet=rs0&readPreference=secondaryPreferred&w=0' },
      logger: { warn: (m) => void warnings.push(m), error: () => {} },
    });
    await sessions.close();
    assert.equal(warnings.filter((w) => /readPreference=secondaryPreferred reads sessions from secondaries/.test(w)).length, 1, warnings.join('\n'));
    assert.equal(warnings.filter((w) => /w=0 does not wait/.test(w)).length, 1, warnings.join('\n'));
  });
});

describe('a replica-set URL is used as written', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  /** An app on `url` + `params`, and every command its store's client sends (the URL turns monitoring on). */
  async function appOn(base: string, params: Record<string, string>, collection: string) {
    const url = new URL(base);
    for (const [k, v] of Object.entries({ ...params, monitorCommands: 'true' })) url.searchParams.set(k, v);
    const app = await serve({ store: { type: 'mongo', url: url.href }, collection, logger: quiet });
    cleanups.push(() => app.close());
    const client = await (app.sessions.store as unknown as { clientP: Promise<MongoClient> }).clientP;
    const commands: CommandStartedEvent[] = [];
    client.on('commandStarted', (e) => void commands.push(e));
    const on = (name: string) => commands.filter((c) => c.commandName === name && c.command[name] === collection);
    return { app, client, on };
  }

  it('w reaches every store write, readPreference the sessions collection; URL options win over store defaults', async (t) => {
    const mongo = await startMongo({ replicaSet: 'rs0' });
    cleanups.push(() => mongo.close());
    if (mongo.external) return t.skip('MONGO_URL names an external server: its own options decide');
    const collection = `sessions_url_${process.pid}`;

    const writer = await appOn(mongo.url, { w: 'majority', maxPoolSize: '3' }, collection);
    assert.equal(writer.client.options.maxPoolSize, 3, 'maxPoolSize from the URL, not the store default (20)');
    const res = await request(`${writer.app.url}/login`, { method: 'POST', body: { user: 'alice' } });
    assert.equal(res.status, 200, res.body);
    const cookie = cookieHeader(res.cookies);
    assert.equal((await request(`${writer.app.url}/me`, { headers: { cookie } })).json.data.user, 'alice');
    const writes = [...writer.on('update'), ...writer.on('insert')];
    assert.ok(writes.length > 0, 'the login was written');
    for (const c of writes) assert.deepEqual(c.command.writeConcern, { w: 'majority' }, `${c.commandName} carries w: majority`);

    // readPreference: jongodb's single-node profile refuses any mode but primary before a command is sent, so here
    // what is checked is that the URL's mode is the one the store's own collection reads with (nothing overrides it).
    const reader = await appOn(mongo.url, { readPreference: 'primaryPreferred' }, collection);
    const coll = await (reader.app.sessions.store as unknown as { coll: Promise<{ readPreference: { mode: string } }> }).coll;
    assert.equal(coll.readPreference.mode, 'primaryPreferred', 'the sessions collection reads with the URL readPreference');
  });
});
