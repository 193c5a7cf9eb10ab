// Loaded into every worker with `--import` before the app's entry: readiness, drain and request counting for
// apps that only call app.listen(); Prometheus figures too when the primary serves /metrics (prom-client is
// loaded only then).
import { readWorkerEnv } from '@cluster-session/core';
import { installWorker } from './worker.ts';

installWorker();
const contract = typeof process.send === 'function' ? readWorkerEnv(process.env) : undefined;
if (contract?.metrics) (await import('./worker-metrics.ts')).installWorkerMetrics(contract.slot);
