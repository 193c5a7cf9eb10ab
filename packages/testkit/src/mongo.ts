import { createRequire } from 'node:module';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { startProcess, type Proc } from './process.ts';

export interface MongoServer {
  /** A mongodb:// URL for the test database. */
  readonly url: string;
  /** True when the URL came from MONGO_URL (a real server the tests must not stop). */
  readonly external: boolean;
  readonly proc: Proc | undefined;
  close(): Promise<void>;
}

export interface MongoOptions {
  database?: string;
  /** Start the single-node replica-set profile (URL carries ?replicaSet=NAME). */
  replicaSet?: string;
}

function jongodbBinary(): string {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve('@jongodb/memory-server-bin-linux-x64-gnu/package.json');
  const bin = path.join(path.dirname(pkg), 'bin', 'jongodb');
  if (!existsSync(bin)) throw new Error(`jongodb binary missing at ${bin}`);
  return bin;
}

/**
 * `MONGO_URL` when set (real MongoDB, e.g. from docker-compose); otherwise the MongoDB-wire-compatible jongodb
 * server from npm on a free port. Mind its gaps: no TTL monitor, no $currentDate, no w:0, no drop().
 */
export async function startMongo(options: MongoOptions = {}): Promise<MongoServer> {
  const database = options.database ?? 'test';
  if (process.env.MONGO_URL) {
    return { url: process.env.MONGO_URL, external: true, proc: undefined, close: async () => {} };
  }
  const args = ['--host=127.0.0.1', '--port=0', `--database=${database}`];
  // jongodb spells the profile in camelCase; 'SINGLE_NODE_REPLICA_SET' is rejected at startup.
  if (options.replicaSet) args.push('--topology-profile=singleNodeReplicaSet', `--replica-set-name=${options.replicaSet}`);
  const proc = startProcess(jongodbBinary(), args);
  // A bad argument makes jongodb print a Java exception without exiting: fail at once rather than time out.
  const [, url, failure] = await proc.waitFor(/JONGODB_URI=(\S+)|Exception in thread "main" (.*)/, 30_000);
  if (!url) {
    await proc.stop('SIGKILL');
    throw new Error(`jongodb refused to start: ${failure}`);
  }
  return {
    url: url!,
    external: false,
    proc,
    async close() {
      await proc.stop('SIGTERM', 5_000);
    },
  };
}
