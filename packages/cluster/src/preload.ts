// Loaded into every worker with `--import` before the app's entry: readiness, drain and request counting for
// apps that only call app.listen().
import { installWorker } from './worker.ts';

installWorker();
