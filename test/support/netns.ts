/**
 * Simulated hosts for the partition suite: one network namespace per "host", each with a veth pair to a bridge in
 * a switch namespace, so hosts reach each other by their own addresses while nothing is added to this machine's
 * own network (every address and route lives inside a namespace this file created). Partitions are nftables
 * rules inside the namespaces. Namespaces are named `csnet-<pid>-<host>`: a run removes its own at the end (also
 * when a test fails, and from an exit hook when the process dies early), and the leftovers of runs whose process
 * is gone at its start.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { alive, which } from '@cluster-session/testkit';

const run = promisify(execFile);
export const PREFIX = 'csnet-';

export interface Host {
  readonly name: string;
  readonly netns: string;
  /** The first address is the host's; more (aliases) are for traffic that must be told apart. */
  readonly addresses: readonly string[];
  readonly address: string;
}

export interface Partition {
  /** Removes the rules: packets flow again (connections that survived resume; the kernel retransmits). */
  heal(): Promise<void>;
}

export interface Net {
  readonly hosts: Readonly<Record<string, Host>>;
  host(name: string): Host;
  /**
   * Drops every packet between `name` and each of `others` (default: every other host), both ways, with a rule in
   * the input chain of each side: neither side can tell a dead peer from a slow one, as in a real partition (an
   * output rule would make the sender's own connect() fail at once).
   */
  partition(name: string, others?: readonly string[]): Promise<Partition>;
  /** Runs `nft -f -` with `ruleset` inside a host's namespace. */
  nft(name: string, ruleset: string): Promise<void>;
  close(): Promise<void>;
}

async function sh(command: string, args: readonly string[], input?: string): Promise<string> {
  try {
    if (input === undefined) return (await run(command, args)).stdout;
    return await new Promise((resolve, reject) => {
      const child = execFile(command, args, (err, stdout, stderr) => (err ? reject(Object.assign(err, { stderr })) : resolve(stdout)));
      child.stdin!.end(input);
    });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`${command} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

function namespaces(): string[] {
  try {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter(Boolean);
  } catch {
    return [];
  }
}

/** Kills what still runs in a namespace and deletes it (synchronous: also usable from an exit hook). */
function destroy(netns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone already
      }
    }
  } catch {
    // no such namespace
  }
  try {
    execFileSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

/** Removes namespaces left by earlier runs of this suite whose process is gone (a crash, a SIGKILL). */
export function removeStale(): string[] {
  const stale = namespaces().filter((n) => {
    const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(n);
    return m && !alive(Number(m[1]));
  });
  for (const n of stale) destroy(n);
  return stale;
}

/**
 * Why this machine cannot run the simulation (not root, `ip`/`nft` missing, the kernel refuses veth, bridges or
 * nftables in a namespace), or undefined when it can: it tries each on a throw-away namespace.
 */
export async function unavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'network namespaces are Linux only';
  if (process.getuid?.() !== 0) return 'creating network namespaces needs root (run as root, as CI does)';
  for (const bin of ['ip', 'nft']) if (!which(bin)) return `${bin} is not installed (.ci/run installs iproute2 and nftables)`;
  const a = `${PREFIX}${process.pid}-probe-a`;
  const b = `${PREFIX}${process.pid}-probe-b`;
  try {
    await sh('ip', ['netns', 'add', a]);
    await sh('ip', ['netns', 'add', b]);
    await sh('ip', ['link', 'add', 'eth0', 'netns', a, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b]);
    await sh('ip', ['-n', a, 'link', 'add', 'br0', 'type', 'bridge']);
    await sh('ip', ['netns', 'exec', a, 'nft', '-f', '-'], 'table inet probe {\n  chain input {\n    type filter hook input priority 0; policy accept;\n  }\n}\n');
    return undefined;
  } catch (err) {
    return `this kernel or container refuses what the simulation needs: ${(err as Error).message}`;
  } finally {
    destroy(a);
    destroy(b);
  }
}

/**
 * Creates the hosts (name -> addresses, all in one /24) and the switch joining them. On any failure whatever was
 * created is removed before the error is thrown.
 */
export async function createNet(spec: Readonly<Record<string, readonly string[]>>, prefixLength = 24): Promise<Net> {
  const ns = (name: string) => `${PREFIX}${process.pid}-${name}`;
  const sw = ns('switch');
  const created: string[] = [];
  const onExit = () => created.forEach(destroy);
  process.once('exit', onExit);
  const closeAll = async () => {
    process.removeListener('exit', onExit);
    for (const n of created.splice(0).reverse()) destroy(n);
  };

  const hosts: Record<string, Host> = {};
  try {
    removeStale();
    await sh('ip', ['netns', 'add', sw]);
    created.push(sw);
    await sh('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    await sh('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
    let port = 0;
    for (const [name, addresses] of Object.entries(spec)) {
      const netns = ns(name);
      await sh('ip', ['netns', 'add', netns]);
      created.push(netns);
      const peer = `p${port++}`;
      // Both ends are created directly inside their namespaces: not even for a moment in this machine's own.
      await sh('ip', ['link', 'add', 'eth0', 'netns', netns, 'type', 'veth', 'peer', 'name', peer, 'netns', sw]);
      await sh('ip', ['-n', sw, 'link', 'set', peer, 'master', 'br0', 'up']);
      for (const address of addresses) await sh('ip', ['-n', netns, 'addr', 'add', `${address}/${prefixLength}`, 'dev', 'eth0']);
      await sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
      await sh('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
      hosts[name] = { name, netns, addresses, address: addresses[0]! };
    }
  } catch (err) {
    await closeAll();
    throw err;
  }

  let partitions = 0;
  const net: Net = {
    hosts,
    host(name) {
      const h = hosts[name];
      if (!h) throw new Error(`no host ${name}`);
      return h;
    },
    async nft(name, ruleset) {
      await sh('ip', ['netns', 'exec', net.host(name).netns, 'nft', '-f', '-'], ruleset);
    },
    async partition(name, others = Object.keys(hosts).filter((h) => h !== name)) {
      const table = `cs_partition_${++partitions}`;
      const drop = (from: readonly string[]) =>
        `table inet ${table} {\n  chain input {\n    type filter hook input priority -10; policy accept;\n    ip saddr { ${from.join(', ')} } drop\n  }\n}\n`;
      const sides = [name, ...others];
      const peers = others.flatMap((o) => net.host(o).addresses);
      for (const side of sides) await net.nft(side, drop(side === name ? peers : net.host(name).addresses));
      return {
        async heal() {
          for (const side of sides) await net.nft(side, `delete table inet ${table}\n`);
        },
      };
    },
    close: closeAll,
  };
  return net;
}
