import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  ClusterConfigError,
  ClusterControlError,
  ClusterControlTimeoutError,
  ClusterNameInUseError,
  ClusterNotRunningError,
  errorFromControl,
} from './errors.ts';

/**
 * The control socket: a unix socket per cluster name, newline-delimited JSON, one request per connection.
 * Only the owner can reach it (0700 directory), so it needs no authentication of its own.
 */

export type ControlCommand = 'status' | 'reload' | 'stop' | 'scale';
const COMMANDS: readonly string[] = ['status', 'reload', 'stop', 'scale'];

/** What a command carries besides its name: `reload --update-env` the caller's environment, `scale` the count. */
export interface ControlBody {
  env?: Record<string, string>;
  workers?: number;
}

/** A whole environment fits (`reload --update-env`); anything longer is not a command of ours. */
const MAX_REQUEST = 1024 * 1024;

function bodyOf(request: Record<string, unknown>): ControlBody {
  const body: ControlBody = {};
  const env = request.env;
  if (env !== null && typeof env === 'object' && !Array.isArray(env) && Object.values(env).every((x) => typeof x === 'string')) {
    body.env = env as Record<string, string>;
  }
  if (typeof request.workers === 'number') body.workers = request.workers;
  return body;
}

/** Directory holding control sockets: CLUSTER_SESSION_RUNTIME_DIR, else $XDG_RUNTIME_DIR/cluster-session, else tmpdir. */
export function runtimeDir(): string {
  if (process.env.CLUSTER_SESSION_RUNTIME_DIR) return path.resolve(process.env.CLUSTER_SESSION_RUNTIME_DIR);
  if (process.env.XDG_RUNTIME_DIR) return path.join(process.env.XDG_RUNTIME_DIR, 'cluster-session');
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return path.join(os.tmpdir(), `cluster-session-${uid}`);
}

export function controlPath(name: string): string {
  return path.join(runtimeDir(), `${name}.sock`);
}

/** Names of clusters with a socket in the runtime directory (some may be stale). */
export function listControlNames(): string[] {
  try {
    return fs.readdirSync(runtimeDir()).filter((f) => f.endsWith('.sock')).map((f) => f.slice(0, -5)).sort();
  } catch {
    return [];
  }
}

/** True when a primary answers on `socketPath` (a socket left by a killed primary refuses the connection). */
function probe(socketPath: string, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(socketPath);
    const done = (live: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(live);
    };
    // A stopped (SIGSTOP) primary still completes the connect; one that never does is not a usable primary either.
    const timer = setTimeout(() => done(true), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Removes the socket file at `socketPath` when no primary listens on it (one killed before it could remove its own,
 * SIGKILL, OOM, power loss); false, leaving it, when a live primary does.
 */
export async function removeStaleControlSocket(socketPath: string): Promise<boolean> {
  if (await probe(socketPath)) return false;
  fs.rmSync(socketPath, { force: true });
  return true;
}

function listenOn(server: net.Server, socketPath: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

type ControlHandler = (command: ControlCommand, body: ControlBody) => Promise<unknown>;

/** Listens on `socketPath`; a stale socket left by a killed primary is replaced, a live one is an error. */
export async function startControlServer(socketPath: string, handler: ControlHandler): Promise<net.Server> {
  const dir = path.dirname(socketPath);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // In a shared tmpdir someone else could have created the directory first and would then reach our socket.
  const st = fs.statSync(dir);
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    throw new ClusterConfigError(`control socket directory ${dir} belongs to uid ${st.uid}, not to this user; set CLUSTER_SESSION_RUNTIME_DIR to a directory you own`);
  }
  const server = net.createServer((socket) => {
    socket.setEncoding('utf8');
    socket.on('error', () => socket.destroy());
    let buffer = '';
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (buffer.length > MAX_REQUEST) return void socket.destroy();
      const nl = buffer.indexOf('\n');
      if (nl === -1) return;
      let request: Record<string, unknown> = {};
      try {
        const parsed: unknown = JSON.parse(buffer.slice(0, nl));
        if (parsed !== null && typeof parsed === 'object') request = parsed as Record<string, unknown>;
      } catch {
        // not JSON: answered as an unknown command below
      }
      const command = request.command;
      if (typeof command !== 'string' || !COMMANDS.includes(command)) {
        socket.end(`${JSON.stringify({ ok: false, error: { code: ClusterControlError.code, message: 'unknown command' } })}\n`);
        return;
      }
      handler(command as ControlCommand, bodyOf(request)).then(
        (result) => socket.end(`${JSON.stringify({ ok: true, result })}\n`),
        (err: { message?: string; code?: string }) =>
          socket.end(`${JSON.stringify({ ok: false, error: { code: err.code ?? ClusterControlError.code, message: err.message ?? String(err) } })}\n`),
      );
    });
  });
  const inUse = () =>
    new ClusterNameInUseError(`a cluster already runs with control socket ${socketPath}; give this one another name (--name / name option)`);
  try {
    await listenOn(server, socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    // The path exists. A live primary answers on it; a socket file left by a killed one (SIGKILL, OOM, power
    // loss) refuses connections and is replaced. Losing a race for the path to another starter is "in use" too.
    if (!(await removeStaleControlSocket(socketPath))) throw inUse();
    try {
      await listenOn(server, socketPath);
    } catch (again) {
      throw (again as NodeJS.ErrnoException).code === 'EADDRINUSE' ? inUse() : again;
    }
  }
  fs.chmodSync(socketPath, 0o600);
  server.unref();
  return server;
}

/** Sends one command (with its body: `env`, `workers`) to a running primary and returns its result. */
export function controlRequest(socketPath: string, command: ControlCommand, timeoutMs = 120_000, body: ControlBody = {}): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let data = '';
    socket.setEncoding('utf8');
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ClusterControlTimeoutError(`no answer from ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => socket.write(`${JSON.stringify({ ...body, command })}\n`));
    socket.on('data', (chunk: string) => (data += chunk));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? new ClusterNotRunningError(`no cluster is running at ${socketPath} (${err.code})`)
          : new ClusterControlError(`control socket ${socketPath}: ${err.message}`),
      );
    });
    socket.once('end', () => {
      clearTimeout(timer);
      let reply: { ok?: boolean; result?: unknown; error?: { code?: string; message?: string } };
      try {
        reply = JSON.parse(data) as typeof reply;
      } catch {
        return reject(new ClusterControlError(`control socket ${socketPath} closed without an answer`));
      }
      if (reply.ok) resolve(reply.result);
      else reject(errorFromControl(reply.error?.code, reply.error?.message ?? 'failed'));
    });
  });
}
