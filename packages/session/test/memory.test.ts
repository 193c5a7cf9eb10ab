import { conformance } from './conformance.ts';

conformance('memory', async () => ({
  store: 'memory',
  multiProcess: false,
  async expiryOf(served, sid) {
    const raw = (served.sessions.store as unknown as { sessions: Record<string, string> }).sessions[sid];
    return raw ? Date.parse(JSON.parse(raw).cookie.expires) : undefined;
  },
  async close() {},
}));
