/**
 * The release check: what a new user gets from the registry, end to end, against a throwaway registry.
 *
 *   npm run release-check                 on the Node running it
 *   node scripts/release-check.ts --node DIR [--node DIR]  once per Node (DIR = a prefix with node_modules/.bin/node)
 *
 * 1. Starts Verdaccio (6.8.0, installed once into $HOME/.cache/verdaccio, not a dependency of this repository) on
 *    127.0.0.1 with a generated config: our packages are publishable there and nowhere else; every other package
 *    comes through its uplink, the registry npm is configured with.
 * 2. Publishes every public package in dependency order (`npm publish`, so prepack builds dist/ and writes the
 *    published manifest), then checks what the registry serves: no `@cluster-session/source` condition.
 * 3. Per Node: in an empty directory outside the repository, `npm create cluster-session@latest my-app`,
 *    `npm install`, `npm test`, `npm start` and a login through the balancer (POST /login, GET /me with the
 *    cookie), Ctrl-C; then the same for `--typescript` on the first Node (its npm test type-checks).
 * 4. Stops everything it started, also on failure or Ctrl-C (each child in its own process group, killed whole).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const VERDACCIO_VERSION = '6.8.0';
const CACHE = process.env.VERDACCIO_HOME ?? path.join(os.homedir(), '.cache', 'verdaccio');
const NPM_CACHE = path.join(os.homedir(), '.cache', 'cluster-session-release-check', 'npm');

const started = Date.now();
const children = new Set<ChildProcess>();
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-release-'));
const log = (line: string) => process.stdout.write(`[release-check +${Math.round((Date.now() - started) / 1000)}s] ${line}\n`);

/** Kills a child and everything it started (its own process group). */
function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

let cleaned = false;
function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  for (const child of children) killGroup(child);
  // A publish interrupted between prepack and postpublish leaves the published manifest in the checkout.
  for (const name of fs.readdirSync(path.join(ROOT, 'packages'))) {
    const backup = path.join(ROOT, 'packages', name, 'package.json.checkout');
    if (fs.existsSync(backup)) fs.renameSync(backup, path.join(ROOT, 'packages', name, 'package.json'));
  }
  fs.rmSync(work, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    log(`${signal}: stopping everything`);
    cleanup();
    process.exit(130);
  });
}

interface RunOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Printed while it runs, prefixed; otherwise printed only on failure. */
  show?: boolean;
}

/** Runs a command to completion in its own process group; throws with its output when it fails or times out. */
async function run(cmd: string, args: string[], o: RunOptions): Promise<string> {
  const child = spawn(cmd, args, { cwd: o.cwd, env: o.env ?? process.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  const take = (d: Buffer) => {
    output += d;
    if (o.show) for (const line of d.toString().split('\n')) if (line.trim()) process.stdout.write(`    ${line}\n`);
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  const timer = setTimeout(() => killGroup(child), o.timeoutMs ?? 300_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  children.delete(child);
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${o.cwd}) failed: ${signal ?? `exit code ${code}`}\n${o.show ? '' : output}`);
  return output;
}

async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** npm itself comes from PATH (a node prefix from the registry has only `node`); it runs on the node first on PATH. */
const npmBin = (_nodeDir: string) => 'npm';

/** Verdaccio into its cache directory (with the node-fetch override it needs here), once. */
async function installVerdaccio(env: NodeJS.ProcessEnv): Promise<string> {
  const bin = path.join(CACHE, 'node_modules', 'verdaccio', 'bin', 'verdaccio');
  const installed = path.join(CACHE, 'node_modules', 'verdaccio', 'package.json');
  if (fs.existsSync(installed) && JSON.parse(fs.readFileSync(installed, 'utf8')).version === VERDACCIO_VERSION) return bin;
  log(`installing verdaccio@${VERDACCIO_VERSION} into ${CACHE}`);
  fs.mkdirSync(CACHE, { recursive: true });
  fs.writeFileSync(
    path.join(CACHE, 'package.json'),
    `${JSON.stringify({ name: 'verdaccio-cache', private: true, dependencies: { verdaccio: VERDACCIO_VERSION }, overrides: { 'node-fetch': '2.7.0' } }, null, 2)}\n`,
  );
  await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: CACHE, env });
  return bin;
}

/** Verdaccio on 127.0.0.1:port: our scope and create-cluster-session local only, everything else proxied. */
async function startRegistry(env: NodeJS.ProcessEnv): Promise<string> {
  const bin = await installVerdaccio(env);
  const upstream = (await run('npm', ['config', 'get', 'registry'], { cwd: work, env })).trim() || 'https://registry.npmjs.org/';
  const port = await freePort();
  const dir = path.join(work, 'registry');
  fs.mkdirSync(dir);
  fs.writeFileSync(
    path.join(dir, 'config.yaml'),
    [
      `storage: ${path.join(dir, 'storage')}`,
      `listen: 127.0.0.1:${port}`,
      'auth:',
      '  htpasswd:',
      `    file: ${path.join(dir, 'htpasswd')}`,
      '    max_users: 1000',
      'uplinks:',
      '  upstream:',
      `    url: ${upstream}`,
      '    timeout: 60s',
      'packages:',
      // Ours: served from this registry only (publishable by anyone here), never looked up upstream.
      "  '@cluster-session/*':",
      '    access: $all',
      '    publish: $authenticated',
      "  'create-cluster-session':",
      '    access: $all',
      '    publish: $authenticated',
      "  '**':",
      '    access: $all',
      '    proxy: upstream',
      'log: { type: stdout, format: pretty, level: warn }',
      '',
    ].join('\n'),
  );
  const child = spawn(process.execPath, [bin, '--config', path.join(dir, 'config.yaml')], { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d));
  child.stderr!.on('data', (d: Buffer) => (output += d));
  const url = `http://127.0.0.1:${port}/`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`verdaccio exited (${child.exitCode}):\n${output}`);
    try {
      if ((await fetch(`${url}-/ping`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`verdaccio did not answer on ${url} within 30 s:\n${output}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  log(`verdaccio ${VERDACCIO_VERSION} on ${url} (uplink ${upstream})`);
  return url;
}

interface Pkg {
  name: string;
  version: string;
  dir: string;
  deps: string[];
}

/** Public packages, each after the workspace packages it depends on. */
function publishOrder(): Pkg[] {
  const all = fs
    .readdirSync(path.join(ROOT, 'packages'))
    .map((d) => path.join(ROOT, 'packages', d))
    .filter((d) => fs.existsSync(path.join(d, 'package.json')))
    .map((dir) => ({ dir, pkg: JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) }))
    .filter((p) => !p.pkg.private);
  const names = new Set(all.map((p) => p.pkg.name as string));
  const pending = all.map((p) => ({ name: p.pkg.name as string, version: p.pkg.version as string, dir: p.dir, deps: Object.keys(p.pkg.dependencies ?? {}).filter((d) => names.has(d)) }));
  const order: Pkg[] = [];
  while (pending.length) {
    const next = pending.findIndex((p) => p.deps.every((d) => order.some((o) => o.name === d)));
    if (next === -1) throw new Error(`a dependency cycle among ${pending.map((p) => p.name).join(', ')}`);
    order.push(...pending.splice(next, 1));
  }
  return order;
}

async function publishAll(registry: string, env: NodeJS.ProcessEnv): Promise<Pkg[]> {
  const order = publishOrder();
  // One build of every package first: each publish's prepack `tsc -b` then finds its dist up to date.
  const tsc = path.join(path.dirname(fileURLToPath(import.meta.resolve('typescript/package.json'))), 'bin', 'tsc');
  await run(process.execPath, [tsc, '-b'], { cwd: ROOT, env, timeoutMs: 300_000 });
  log('built dist/ of every package (tsc -b)');
  // A throwaway user on the throwaway registry (what `npm adduser` does), its token in a throwaway npmrc.
  const user = await fetch(`${registry}-/user/org.couchdb.user:release-check`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'release-check', password: `rc-${process.pid}-${Date.now()}` }),
  });
  const { token } = (await user.json()) as { token?: string };
  if (!token) throw new Error(`verdaccio refused to create the publishing user: HTTP ${user.status}`);
  const npmrc = path.join(work, 'publish.npmrc');
  fs.writeFileSync(npmrc, `registry=${registry}\n//${new URL(registry).host}/:_authToken=${token}\n`);
  for (const p of order) {
    await run('npm', ['publish', '--registry', registry, '--userconfig', npmrc, '--loglevel=error', '--ignore-scripts=false'], { cwd: p.dir, env, timeoutMs: 180_000 });
    const doc = (await (await fetch(`${registry}${p.name.replace('/', '%2f')}`)).json()) as { versions?: Record<string, unknown> };
    const published = doc.versions?.[p.version];
    if (!published) throw new Error(`${p.name}@${p.version} is not on the registry after npm publish`);
    if (JSON.stringify(published).includes('@cluster-session/source')) throw new Error(`${p.name}@${p.version}: the registry's manifest names the @cluster-session/source condition`);
    const checkout = fs.readFileSync(path.join(p.dir, 'package.json'), 'utf8');
    if (!checkout.includes('"prepack"')) throw new Error(`${p.name}: package.json was not restored after npm publish`);
  }
  log(`published ${order.map((p) => `${p.name}@${p.version}`).join(', ')}`);
  return order;
}

/** `npm create`, install, test, start, a login through the balancer, Ctrl-C: one Node, one variant. */
async function tryStarter(nodeDir: string, registry: string, typescript: boolean): Promise<void> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${nodeDir}${path.delimiter}${process.env.PATH}`,
    npm_config_registry: registry,
    // A cache of its own, kept between runs (third-party tarballs hit it by integrity; ours are new each run, so
    // never stale), except npx's installs: `create-cluster-session@latest` there would be an older build of 0.1.0.
    npm_config_cache: NPM_CACHE,
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  };
  delete env.NODE_OPTIONS;
  delete env.NODE_TEST_CONTEXT;
  for (const k of Object.keys(env)) if (k.startsWith('npm_') && !k.startsWith('npm_config_')) delete env[k];
  const nodeVersion = (await run(path.join(nodeDir, 'node'), ['--version'], { cwd: work, env })).trim();
  const label = `Node ${nodeVersion}, ${typescript ? 'TypeScript' : 'JavaScript'}`;
  const home = fs.mkdtempSync(path.join(work, 'user-'));
  log(`${label}: npm create cluster-session@latest my-app${typescript ? ' -- --typescript' : ''} (in ${home})`);
  const created = await run(npmBin(nodeDir), ['create', 'cluster-session@latest', 'my-app', '--yes', ...(typescript ? ['--', '--typescript'] : [])], { cwd: home, env });
  process.stdout.write(`${created.trimEnd().replace(/^/gm, '    ')}\n`);
  const app = path.join(home, 'my-app');
  const pkg = fs.readFileSync(path.join(app, 'package.json'), 'utf8');
  if (/conditions|workspace:|file:|link:/.test(pkg)) throw new Error(`the starter's package.json links to the repository:\n${pkg}`);
  log(`${label}: npm install`);
  await run(npmBin(nodeDir), ['install'], { cwd: app, env, timeoutMs: 300_000 });
  const installed = JSON.parse(fs.readFileSync(path.join(app, 'node_modules', '@cluster-session', 'session', 'package.json'), 'utf8'));
  if (JSON.stringify(installed).includes('@cluster-session/source') || !fs.existsSync(path.join(app, 'node_modules', '@cluster-session', 'session', 'dist', 'index.js'))) {
    throw new Error('the installed @cluster-session/session has the source condition or no dist/');
  }
  log(`${label}: npm test`);
  const tested = await run(npmBin(nodeDir), ['test'], { cwd: app, env, timeoutMs: 240_000 });
  // Node 24 prints the spec reporter's summary (ℹ), Node 22 TAP's (#) when the output is not a terminal.
  const summary = tested.split('\n').filter((l) => /^(ℹ|#) (tests|pass|fail) \d+$/.test(l));
  process.stdout.write(summary.map((l) => `    ${l}\n`).join(''));
  if (!summary.some((l) => /^(ℹ|#) fail 0$/.test(l)) || summary.some((l) => /^(ℹ|#) pass 0$/.test(l))) throw new Error(`npm test did not report passes and 0 failures:\n${tested}`);
  const bin = await run(npmBin(nodeDir), ['exec', '--', 'cluster-session', '--version'], { cwd: app, env });
  log(`${label}: npx cluster-session --version: ${bin.trim()}`);
  await startAndLogin(nodeDir, app, env, label);
}

async function startAndLogin(nodeDir: string, app: string, env: NodeJS.ProcessEnv, label: string): Promise<void> {
  const port = await freePort();
  const admin = await freePort();
  const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  log(`${label}: npm start (PORT=${port})`);
  const child = spawn(npmBin(nodeDir), ['start'], {
    cwd: app,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...env, PORT: String(port), ADMIN_PORT: String(admin), INSTANCE_PORTS: `${ports[0]},${ports[1]}`, METRICS_PORTS: `${ports[2]},${ports[3]}`, WORKERS: '2', CLUSTER_SESSION_RUNTIME_DIR: path.join(app, '.run') },
  });
  children.add(child);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d));
  child.stderr!.on('data', (d: Buffer) => (output += d));
  const exited = once(child, 'exit');
  const deadline = Date.now() + 90_000;
  while (!/example is ready: open http/.test(output)) {
    if (child.exitCode !== null) throw new Error(`npm start exited (${child.exitCode}):\n${output}`);
    if (Date.now() > deadline) throw new Error(`npm start not ready within 90 s:\n${output}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const url = `http://127.0.0.1:${port}`;
  const res = await fetch(`${url}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'wonderland' }) });
  if (res.status !== 200) throw new Error(`POST /login through the balancer: ${res.status} ${await res.text()}`);
  const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  const instances = new Set<string>();
  const workers = new Set<number>();
  for (let i = 0; i < 8; i++) {
    const me = await fetch(`${url}/me`, { headers: { cookie } });
    const body = (await me.json()) as { user?: string; instance?: string; worker?: number };
    if (me.status !== 200 || body.user !== 'alice') throw new Error(`GET /me with the login's cookie: ${me.status} ${JSON.stringify(body)}`);
    instances.add(body.instance!);
    workers.add(body.worker!);
  }
  log(`${label}: POST /login 200, GET /me 200 as alice x8 through the balancer: instances ${[...instances].sort().join(',')}, ${workers.size} workers`);
  if (instances.size !== 2) throw new Error(`the balancer reached ${[...instances].join(',')} only`);
  // Ctrl-C reaches the whole foreground group, as in a terminal: npm, the launcher, both primaries, their workers.
  process.kill(-child.pid!, 'SIGINT');
  const timer = setTimeout(() => killGroup(child), 30_000);
  const [code, signal] = (await exited) as [number | null, string | null];
  clearTimeout(timer);
  children.delete(child);
  // npm re-raises the signal its script got (so a shell sees the Ctrl-C): SIGINT is its clean end.
  if (code !== 0 && signal !== 'SIGINT') throw new Error(`npm start did not stop cleanly on Ctrl-C (${signal ?? `exit ${code}`}):\n${output}`);
  const left = leftovers(app);
  if (left.length) throw new Error(`processes left after npm start stopped: ${left.join(', ')}`);
  const sockets = fs.existsSync(path.join(app, '.run')) ? fs.readdirSync(path.join(app, '.run')).filter((f) => f.endsWith('.sock')) : [];
  if (sockets.length) throw new Error(`control sockets left after npm start stopped: ${sockets.join(', ')}`);
  log(`${label}: Ctrl-C: npm start ended (${signal ?? `exit ${code}`}), no process or control socket left`);
}

/** Processes still running in the app's directory (the launcher, primaries and workers all run there). */
function leftovers(app: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
      if (cwd === app || cwd.startsWith(`${app}/`)) found.push(`${pid} (${fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()})`);
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const nodes: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--node' && args[i + 1]) nodes.push(path.resolve(args[++i]!, 'node_modules', '.bin'));
    else throw new Error(`unknown argument ${args[i]}: usage: node scripts/release-check.ts [--node PREFIX]...`);
  }
  if (nodes.length === 0) nodes.push(path.dirname(process.execPath));
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  fs.rmSync(path.join(NPM_CACHE, '_npx'), { recursive: true, force: true });
  const registry = await startRegistry(env);
  await publishAll(registry, env);
  for (const [i, nodeDir] of nodes.entries()) {
    await tryStarter(nodeDir, registry, false);
    if (i === 0) await tryStarter(nodeDir, registry, true);
  }
}

try {
  await main();
  log(`passed in ${Math.round((Date.now() - started) / 1000)} s`);
  cleanup();
  process.exit(0);
} catch (err) {
  process.stdout.write(`[release-check] FAILED: ${(err as Error)?.message ?? String(err)}\n`);
  cleanup();
  process.exit(1);
}
