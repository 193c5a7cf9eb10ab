/**
 * The worker entry: one Express app per worker process. Run it under the cluster bootstrap
 * (`cluster-session start src/server.ts -i max`) or alone (`node src/server.ts`) for a single process.
 */
import { listen } from '@cluster-session/cluster';
import { createApp } from './app.ts';

const port = Number(process.env.PORT ?? 3000);
const app = createApp();
await listen(app, port);
