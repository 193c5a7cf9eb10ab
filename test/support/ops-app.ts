/**
 * The worker app of the alert tests: Express with clusterSession() on the store from the environment, a route
 * that answers late, and a way to crash-loop one slot (OPS_CRASH_FILE exists: slot 1 exits soon after it
 * listens, on every restart).
 */
import { existsSync } from 'node:fs';
import express from 'express';
import { listen } from '@cluster-session/cluster';
import { clusterSession, login } from '@cluster-session/session';

const app = express();
app.use(express.json());
const sessions = clusterSession();
app.use(sessions);
app.get('/healthz', (_req, res) => void res.json({ ok: true }));
app.get('/slow', (req, res) => {
  setTimeout(() => res.json({ slept: Number(req.query.ms) }), Number(req.query.ms ?? 100));
});
app.post('/login', async (req, res) => {
  await login(req, { user: 'alice' });
  res.json({ user: 'alice' });
});
app.get('/me', (req, res) => {
  const user = (req.session as unknown as { user?: string }).user;
  if (!user) return void res.status(401).json({ error: 'not signed in' });
  res.json({ user });
});
app.use(sessions.errorHandler);

await listen(app);
const crash = process.env.OPS_CRASH_FILE;
if (crash && existsSync(crash) && process.env.CLUSTER_SESSION_SLOT === '1') setTimeout(() => process.exit(3), 100);
