import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

const EXTRA = ['/usr/sbin', '/sbin', '/usr/local/sbin'];

/** The absolute path of an executable on PATH (or in the sbin folders Debian puts servers in), else undefined. */
export function which(name: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(path.delimiter), ...EXTRA]) {
    if (!dir) continue;
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * For `test(name, { skip: needs('redis-server') }, ...)`: a newcomer's `npm test` on a machine with only Node
 * skips suites whose server is not installed, saying which; in CI (`CI` set), where `.ci/run` installs them,
 * nothing is skipped, so a missing install step fails loudly instead of passing quietly.
 */
export function needs(...binaries: string[]): string | false {
  if (process.env.CI) return false;
  const missing = binaries.filter((b) => which(b) === undefined);
  return missing.length ? `needs ${missing.join(', ')} (not installed; .ci/run installs it)` : false;
}

/**
 * A Node older than the supported 22.18 on this machine (these machines ship Node 20 as /usr/bin/node), for the
 * tests of what users of an old Node see; undefined where there is none.
 */
export function oldNode(): string | undefined {
  return ['/usr/bin/node', '/usr/local/bin/node'].find((bin) => {
    try {
      const [major, minor] = execFileSync(bin, ['-p', 'process.versions.node'], { encoding: 'utf8' }).split('.').map(Number);
      return major! < 22 || (major === 22 && minor! < 18);
    } catch {
      return false;
    }
  });
}
