import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { startNode, type Proc } from '@cluster-session/testkit';
import { conformance } from './conformance.ts';

conformance('sqlite', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cs-sqlite-'));
  // A directory that does not exist yet: the store creates it.
  const file = path.join(dir, 'nested', 'sessions.sqlite');
  const native = () => new DatabaseSync(file, { timeout: 2000 });
  let locker: Proc | undefined;
  return {
    store: { type: 'sqlite', path: file },
    multiProcess: true,
    // The stored cookie's expiry: the column is rounded up to a step (expiryColumn() in src/stores/sqlite.ts).
    async expiryOf(_served, sid) {
      const db = native();
      try {
        const row = db.prepare(`SELECT expires, json_extract(sess, '$.cookie.expires') AS cookie FROM sessions WHERE sid = ?`).get(sid) as { expires: number; cookie: string | null } | undefined;
        return row && (row.cookie ? Date.parse(row.cookie) : row.expires);
      } finally {
        db.close();
      }
    },
    async corrupt(_served, sid) {
      const db = native();
      db.prepare(`UPDATE sessions SET sess = '{"cookie": not json' WHERE sid = ?`).run(sid);
      db.close();
    },
    // "Down" for a file store: another process holds the write lock (a stuck writer). Reads go on (WAL).
    outage: {
      failing: 'write',
      async stop() {
        locker = startNode([path.join(import.meta.dirname, 'fixtures', 'lock-sqlite.ts'), file]);
        await locker.waitFor(/locked/);
      },
      async start() {
        await locker?.stop('SIGTERM');
      },
    },
    // The app side of a restart: a new process opens the same file and finds every session.
    restart: { persistent: true, run: async () => {} },
    async close() {
      await locker?.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
