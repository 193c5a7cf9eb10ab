// Issue 19 item 1: Redis Sentinel and Cluster by configuration alone. The URL forms and REDIS_CLUSTER_NODES, as
// resolveConfig() reads them (object or environment), and the startup error for each wrong or partial part.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveConfig, type ResolvedStore } from '@cluster-session/session';
import { redactUrl } from '../src/stores/url.ts';
import { refusedWith } from './fixtures/config-error.ts';

const SECRET = 'redis-url-test-secret-0123456789';

function target(env: Record<string, string>, store: object = { type: 'redis' }) {
  const s = resolveConfig({ secret: SECRET, store: store as never }, env).store as Extract<ResolvedStore, { type: 'redis' }>;
  assert.equal(s.type, 'redis');
  return s;
}

const refused = (url: string, part: RegExp, name = 'REDIS_URL') => refusedWith(url, () => target({ [name]: url }), new RegExp(name), part);

describe('Redis topologies by URL', () => {
  it('standalone: the URL goes to ioredis as written (its own query options too); the default is a local Redis', () => {
    assert.deepEqual(target({}).target, { kind: 'standalone', url: 'redis://127.0.0.1:6379', tls: false, waitReplicas: 0 });
    const t = target({ REDIS_URL: 'rediss://app:s3cret@cache.internal:6380/2?family=6' }).target;
    assert.deepEqual(t, { kind: 'standalone', url: 'rediss://app:s3cret@cache.internal:6380/2?family=6', tls: true, waitReplicas: 0, username: 'app', password: 's3cret' });
  });

  it('sentinel: hosts (default port 26379), master name, db, password, sentinel credentials, TLS', () => {
    const s = target({ REDIS_URL: 'redis+sentinel://:pa%40ss@10.0.0.1,10.0.0.2:26380,[fd00::3]:26379/mymaster/3?sentinelPassword=sp' });
    assert.equal(s.url, 'redis+sentinel://:pa%40ss@10.0.0.1,10.0.0.2:26380,[fd00::3]:26379/mymaster/3?sentinelPassword=sp');
    assert.deepEqual(s.target, {
      kind: 'sentinel',
      sentinels: [{ host: '10.0.0.1', port: 26379 }, { host: '10.0.0.2', port: 26380 }, { host: 'fd00::3', port: 26379 }],
      name: 'mymaster',
      db: 3,
      tls: false,
      waitReplicas: 0,
      password: 'pa@ss',
      sentinelPassword: 'sp',
    });
    const tls = target({ REDIS_URL: 'rediss+sentinel://s1:26379,s2:26379/cache/' }).target;
    assert.equal(tls.kind === 'sentinel' && tls.tls, true);
    assert.equal(tls.kind === 'sentinel' && tls.db, 0);
  });

  it('cluster: redis+cluster:// URL, REDIS_CLUSTER_NODES, or store.clusterNodes in code, all the same target', () => {
    const nodes = [{ host: 'r1', port: 7000 }, { host: 'r2', port: 7001 }, { host: 'r3', port: 6379 }];
    assert.deepEqual(target({ REDIS_URL: 'redis+cluster://r1:7000,r2:7001,r3' }).target, { kind: 'cluster', nodes, tls: false, waitReplicas: 0 });
    const fromNodes = target({ REDIS_CLUSTER_NODES: 'r1:7000, r2:7001,r3' });
    assert.deepEqual(fromNodes.target, { kind: 'cluster', nodes, tls: false, waitReplicas: 0 });
    assert.equal(fromNodes.url, 'redis+cluster://r1:7000,r2:7001,r3:6379');
    assert.deepEqual(target({}, { type: 'redis', clusterNodes: ['r1:7000', 'r2:7001', 'r3'] }).target, fromNodes.target);
    const secure = target({ REDIS_URL: 'rediss+cluster://u:p@r1:7000,r2:7001/0' }).target;
    assert.deepEqual(secure, { kind: 'cluster', nodes: nodes.slice(0, 2), tls: true, waitReplicas: 0, username: 'u', password: 'p' });
  });

  it('the object wins over the environment; in code the same URL forms are accepted as store.url', () => {
    const s = target({ REDIS_URL: 'redis://elsewhere:6379', REDIS_CLUSTER_NODES: 'x:1' }, { type: 'redis', url: 'redis+sentinel://s1/m' });
    assert.equal(s.target.kind, 'sentinel');
  });

  it('waitReplicas is read from every form and kept out of the URL handed to ioredis', () => {
    const s = target({ REDIS_URL: 'redis://h:6379/1?waitReplicas=1&family=4' }).target;
    assert.deepEqual(s, { kind: 'standalone', url: 'redis://h:6379/1?family=4', tls: false, waitReplicas: 1 });
    assert.equal(target({ REDIS_URL: 'redis+sentinel://s1/m?waitReplicas=2' }).target.waitReplicas, 2);
    assert.equal(target({ REDIS_URL: 'redis+cluster://n1?waitReplicas=1' }).target.waitReplicas, 1);
  });

  it('a wrong or partial URL is a startup error naming the part that is wrong', () => {
    refused('localhost:6379', /not a URL/);
    refused('redis+sentinal://s1:26379/m', /scheme "redis\+sentinal:\/\/" is not one of/);
    refused('redis+sentinel://s1:26379,s2:26379', /master name is missing/);
    refused('redis+sentinel://s1:26379,s2:26379/', /master name is missing/);
    refused('redis+sentinel://s1:26379,,s2:26379/m', /host #2 is empty/);
    refused('redis+sentinel://s1:26379,s2:263x9/m', /host #2 "s2:263x9" has port "263x9"/);
    refused('redis+cluster://n1:7000,n2:70000', /host #2 "n2:70000" has port "70000"/);
    refused('redis://a:6379,b:6379', /2 hosts, but redis:\/\/ names one server/);
    refused('redis://h:6379/x', /the database "x" is not a number/);
    refused('redis+sentinel://s1/m/x', /the database "x" is not a number/);
    refused('redis+sentinel://s1/m/1/2', /more than a master name and a database/);
    refused('redis+sentinel://s1/m?sentinelPasword=x', /parameter "sentinelPasword" is unknown/);
    refused('redis+cluster://n1:7000/2', /only database 0/);
    refused('redis+cluster://n1?waitReplicas=one', /waitReplicas "one"/);
    refused('redis://', /names no host/);
    refused('redis://h ost:6379', /host #1 "h ost" has characters/);
    refused('redis://:pw@h:6379#x', /#fragment/);
    refused('redis://:%E0%A4%A@h', /password has a broken %-escape/);
    refused('redis://justapassword@h:6379', /user name but no password/);
    refused('n1:7000,n2:port', /host #2 "n2:port" has port "port"/, 'REDIS_CLUSTER_NODES');
    refused('redis://:pw@n1:7000', /credentials and TLS go in a redis\+cluster:\/\//, 'REDIS_CLUSTER_NODES');
  });

  it('REDIS_URL and REDIS_CLUSTER_NODES together are ambiguous', () => {
    assert.throws(() => target({ REDIS_URL: 'redis://h', REDIS_CLUSTER_NODES: 'n1:7000' }), /REDIS_URL and REDIS_CLUSTER_NODES are both set/);
    assert.throws(() => target({}, { type: 'redis', url: 'redis://h', clusterNodes: 'n1' }), /store.url and store.clusterNodes are both set/);
  });

  it('never prints a password, whatever part is wrong', () => {
    for (const url of [
      'redis+sentinel://:hunter2-secret@s1:26379',
      'redis+sentinel://user:hunter2-secret@s1:bad/m',
      'redis+sentinel://s1/m?sentinelPassword=hunter2-secret&x=1',
      'redis://hunter2-secret@h',
      'redis://:hunter2-secret@a,b',
    ]) {
      const message = refused(url, /./);
      assert.ok(!message.includes('hunter2'), message);
    }
    const message = refused('redis://:hunter2-secret@n1:7000', /./, 'REDIS_CLUSTER_NODES');
    assert.ok(!message.includes('hunter2'), message);
    assert.equal(redactUrl('rediss+sentinel://app:p@ss@s1,s2/m?sentinelPassword=q'), 'rediss+sentinel://app:***@s1,s2/m?sentinelPassword=***');
    assert.equal(redactUrl('redis://h:6379/0'), 'redis://h:6379/0');
    // ioredis reads a lone user name as the password, so all of it goes.
    assert.equal(redactUrl('redis://tokenonly@h:6379'), 'redis://***@h:6379');
    assert.equal(redactUrl('mongodb://app:pw@m1:27017,m2:27017/db?replicaSet=rs0'), 'mongodb://app:***@m1:27017,m2:27017/db?replicaSet=rs0');
  });
});
