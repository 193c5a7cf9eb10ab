import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { ClusterConfigError, startCluster, type ClusterOptions } from '@cluster-session/cluster';
import { FIXTURES } from './helpers.ts';

const entry = path.join(FIXTURES, 'app.ts');

test('invalid options are refused at the boundary, naming the option, its env variable, the value, what is allowed and the fix', async () => {
  const cases: Array<[Partial<ClusterOptions> & Record<string, unknown>, RegExp]> = [
    [{ entry: '/nope/server.js' }, /^startCluster: option entry is "\/nope\/server.js": expected the path of an existing file\. Fix: no file at/],
    [{ entry, workers: 0 }, /option workers \(or env WORKERS\) is 0: expected a positive integer \(at most 1024\) or 'max'\. Example: workers: 'max'\./],
    [{ entry, workers: 'lots' as never }, /option workers \(or env WORKERS\) is "lots"/],
    [{ entry, readyTimeout: -1 }, /option readyTimeout is -1: expected an integer number of milliseconds >= 1/],
    [{ entry, maxMemory: 'a lot' }, /option maxMemory is "a lot": expected bytes or a size like '512M'/],
    [{ entry, sticky: true, env: { PORT: '' } }, /option sticky\.port \(or env PORT\) is missing: .*Fix: sticky mode needs a port/],
    [{ entry, sticky: { port: 80, trustProxy: 'yes' as never } }, /option sticky\.trustProxy is "yes"/],
    [{ entry, schedulingPolicy: 'random' as never }, /option schedulingPolicy is "random": expected 'rr' or 'os'/],
    [{ entry, backoff: { initial: 500, max: 100 } }, /option backoff\.max is 100: expected a delay >= backoff\.initial \(500 ms\)/],
    [{ entry, name: '../evil' }, /option name is "\.\.\/evil"/],
    [{ entry, wrkers: 2 }, /^startCluster: unknown option wrkers: did you mean workers\? Fix: rename it to workers\.$/],
    [{ entry, backoff: { intial: 5 } as never }, /unknown option backoff\.intial: did you mean backoff\.initial\?/],
  ];
  const savedPort = process.env.PORT;
  delete process.env.PORT;
  try {
    for (const [options, message] of cases) {
      await assert.rejects(startCluster(options as ClusterOptions), (err: unknown) => {
        assert.ok(err instanceof ClusterConfigError, String(err));
        assert.equal(err.code, 'CS_ERR_CLUSTER_CONFIG');
        assert.match(err.message, message);
        return true;
      });
    }
  } finally {
    if (savedPort !== undefined) process.env.PORT = savedPort;
  }
});
