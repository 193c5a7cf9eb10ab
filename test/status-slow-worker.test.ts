// The status page's view of an instance whose worker is busy: the instance's primary waits up to 1 s for each
// worker's figures, so the balancer must wait longer than that for the instance's /status.json. It used to give
// up at the same 1 s, and one blocked worker made the whole instance "unreachable".
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { createBalancer } from '@cluster-session/balancer';
import { freePort, request, startNode, until } from '@cluster-session/testkit';

const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'packages', 'cli', 'bin', 'cluster-session.js');
const APP = path.join(ROOT, 'packages', 'cluster', 'test', 'fixtures', 'app.ts');

interface StackView {
  instances: Record<string, { ok: boolean; error?: string; cluster?: { slots: Array<{ slot: number; memory: number | null }> } }>;
}

test('a worker too busy to answer leaves its instance on the status page, with only its own figures missing', async () => {
  const [port, metrics] = [await freePort(), await freePort()];
  const runtime = mkdtempSync(path.join(os.tmpdir(), 'cs-status-slow-'));
  after(() => rmSync(runtime, { recursive: true, force: true }));
  const cluster = startNode([BIN, 'start', APP, '-i', '2', '--port', String(port), '--metrics', String(metrics), '--name', `slow-${process.pid}`], {
    env: { ...process.env, CLUSTER_SESSION_RUNTIME_DIR: runtime },
  });
  after(() => cluster.stop('SIGKILL'));
  await cluster.waitFor(/2\/2 workers ready/);
  const lb = await createBalancer({
    listen: 0,
    upstreams: [{ url: `http://127.0.0.1:${port}`, id: 'a', status: `http://127.0.0.1:${metrics}` }],
    admin: 0,
  });
  after(() => lb.close());
  const stack = async () => (await request(`${lb.adminUrl}/stack.json`)).json as StackView;
  await until('the instance shows both workers', async () => (await stack()).instances.a?.cluster?.slots.length === 2, 10_000);

  // Block one worker's event loop for 4 s: it cannot answer the primary's question for its figures.
  const blocked = request(`http://127.0.0.1:${port}/block?ms=4000`, { timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 300));
  // The view is cached for a second: the next fetch is one made while the worker is blocked.
  await new Promise((r) => setTimeout(r, 1_100));
  const view = (await stack()).instances.a!;
  assert.equal(view.ok, true, `the instance is reachable (${view.error ?? ''})`);
  const memory = view.cluster!.slots.map((s) => s.memory);
  assert.equal(memory.filter((m) => m === null).length, 1, `the blocked worker's figures are missing, the other's are there: ${JSON.stringify(memory)}`);
  assert.equal((await blocked).status, 200);
});
