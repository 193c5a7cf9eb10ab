/**
 * What an app's start looks like from outside: the configuration checked once where it enters (checkConfig, no
 * I/O), the words /healthz uses while the store is unreachable, and no SQLite ExperimentalWarning in the output.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { checkConfig, clusterSession, ConfigError, type Logger } from '@cluster-session/session';
import { freePort } from '@cluster-session/testkit';

const run = promisify(execFile);
const quiet: Logger = { warn: () => {}, error: () => {} };
const SECRET = 'startup-test-secret-0123456789abcdef';
const dir = mkdtempSync(path.join(tmpdir(), 'cs-startup-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('checkConfig', () => {
  it('returns the resolved config and touches nothing: no SQLite file, no connection', async () => {
    const file = path.join(dir, 'never', 'sessions.sqlite');
    const c = checkConfig({ logger: quiet }, { SQLITE_PATH: file, SESSION_SECRET: SECRET });
    assert.equal(c.store.type, 'sqlite');
    assert.equal(existsSync(path.dirname(file)), false, 'the store was not opened');
    // A Redis nobody listens on: resolving it neither waits nor fails (workers will wait for it, and say so).
    const port = await freePort();
    assert.equal(checkConfig({ logger: quiet }, { SESSION_STORE: 'redis', REDIS_URL: `redis://127.0.0.1:${port}`, SESSION_SECRET: SECRET }).store.type, 'redis');
  });

  it('throws the ConfigError a worker would throw, JWT options included', () => {
    assert.throws(() => checkConfig({ logger: quiet }, { SESSION_STORE: 'bogus' }), (e: unknown) => e instanceof ConfigError && /SESSION_STORE\) is "bogus"/.test(e.message));
    assert.throws(() => checkConfig({ logger: quiet }, { NODE_ENV: 'production' }), /SESSION_SECRET.*NODE_ENV=production/);
    assert.throws(
      () => checkConfig({ logger: quiet }, { NODE_ENV: 'production', SESSION_MODE: 'jwt', SESSION_STORE: 'memory' }),
      (e: unknown) => e instanceof ConfigError && /mode 'jwt'.*JWT_SECRET/.test(e.message),
    );
    assert.throws(() => checkConfig({ logger: quiet }, { SESSION_MODE: 'jwt', JWT_SECRET: 'too-short' }), ConfigError);
    assert.equal(checkConfig({ logger: quiet }, { SESSION_MODE: 'jwt', JWT_SECRET: SECRET, SESSION_SECRET: SECRET }).mode, 'jwt');
  });
});

describe('health while the store is unreachable', () => {
  it('names the store, its address and the cause (ECONNREFUSED), within 2 s; a password never shows', async () => {
    const port = await freePort();
    const sessions = clusterSession({ store: { type: 'redis', url: `redis://app:hunter2-secret@127.0.0.1:${port}` }, secret: SECRET, logger: quiet });
    try {
      const started = Date.now();
      let health = await sessions.health();
      while (!/ECONNREFUSED/.test(health.error ?? '') && Date.now() - started < 2_000) {
        await new Promise((r) => setTimeout(r, 50));
        health = await sessions.health();
      }
      assert.equal(health.ok, false);
      assert.equal(health.error, `redis store at redis://app:***@127.0.0.1:${port} is unreachable: connect ECONNREFUSED 127.0.0.1:${port}`);
      assert.ok(Date.now() - started < 2_000, 'the cause was known within 2 s');
    } finally {
      await sessions.close();
    }
  });
});

/** Node binaries to try: this one, and Node 22 from .ci/run's prefix when present (where SQLite still warns). */
const nodes = [process.execPath, path.join(homedir(), '.cache', 'node22', 'node_modules', '.bin', 'node')].filter(
  (p, i, all) => existsSync(p) && all.indexOf(p) === i,
);

describe('node:sqlite ExperimentalWarning', () => {
  for (const node of nodes) {
    it(`the embedded store prints none, other warnings still do (${node})`, async () => {
      const conditions = process.execArgv.filter((a) => a.startsWith('--conditions'));
      const script = `
        const { clusterSession } = await import('@cluster-session/session');
        const s = clusterSession({ store: { type: 'sqlite', path: ${JSON.stringify(path.join(dir, 'warn.sqlite'))} }, secret: ${JSON.stringify(SECRET)} });
        await s.health();
        await s.close();
        process.emitWarning('another experiment', 'ExperimentalWarning');`;
      const ours = await run(node, [...conditions, '--input-type=module', '-e', script], { cwd: path.join(import.meta.dirname, '..') });
      assert.doesNotMatch(ours.stderr, /SQLite is an experimental feature/);
      assert.match(ours.stderr, /ExperimentalWarning: another experiment/, 'the filter drops that one warning only');
      // The control: loaded directly, this Node does (Node 22) or does not (Node 24) warn; ours never does.
      const direct = await run(node, ['--input-type=module', '-e', "import 'node:sqlite';"]);
      const major = Number((await run(node, ['-p', 'process.versions.node'])).stdout.split('.')[0]);
      if (major === 22) assert.match(direct.stderr, /SQLite is an experimental feature/, 'Node 22 itself warns');
    });
  }
});
