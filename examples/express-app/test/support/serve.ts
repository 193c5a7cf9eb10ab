import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, type AppOptions } from '../../src/app.ts';

export interface Served {
  readonly app: ReturnType<typeof createApp>;
  readonly url: string;
  /** Closes the server (and its idle connections) and the app's sessions (the store's connections). */
  close(): Promise<void>;
}

/** The example app on a free port of 127.0.0.1, as one worker of it runs. */
export async function serveApp(options: AppOptions): Promise<Served> {
  const app = createApp(options);
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return {
    app,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeIdleConnections();
      server.close();
      await app.sessions.close();
    },
  };
}
