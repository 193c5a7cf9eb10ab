/**
 * `npm create cluster-session@latest my-app [-- --typescript]`: the starter in a new directory, without a
 * question asked. Exit 0 written, 2 usage, 1 anything else (one line each, no stack).
 */
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isClusterSessionError } from '@cluster-session/core';
import { CreateTemplateError, CreateUsageError } from './errors.ts';
import { scaffold } from './scaffold.ts';
import { writeTemplate } from './template.ts';

const HOME = new URL('..', import.meta.url);
const USAGE = `Usage: npm create cluster-session@latest <directory> [-- --typescript]
       npx create-cluster-session <directory> [--typescript]

Writes the cluster-session starter into a new (or empty) directory: an Express login app whose sessions survive
hops across workers and instances, \`npm start\` (the balancer on PORT in front of two clustered instances on the
embedded SQLite store) and \`npm test\`.

  --typescript, --ts   the TypeScript starter (Node runs it as is; \`npm run typecheck\`)
  --javascript, --js   the JavaScript starter (the default)
  -h, --help           this text
  -v, --version        the version (the @cluster-session/* versions the starter depends on)
`;

function version(): string {
  return (JSON.parse(fs.readFileSync(new URL('package.json', HOME), 'utf8')) as { version: string }).version;
}

/** The published template/, or in a checkout one made from examples/express-app into a temporary directory. */
async function templateRoot(): Promise<{ dir: string; temporary: boolean }> {
  const packed = fileURLToPath(new URL('template/', HOME));
  if (fs.existsSync(path.join(packed, 'js', 'package.json'))) return { dir: packed, temporary: false };
  const example = fileURLToPath(new URL('../../examples/express-app/', HOME));
  if (!fs.existsSync(example)) throw new CreateTemplateError(`this create-cluster-session has no template (${packed}): reinstall it (npm create cluster-session@latest)`);
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'create-cluster-session-'));
  await writeTemplate({ exampleDir: example, assets: fileURLToPath(new URL('files/', HOME)), out: dir, version: version() });
  return { dir, temporary: true };
}

function parse(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        typescript: { type: 'boolean' },
        ts: { type: 'boolean' },
        javascript: { type: 'boolean' },
        js: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        'write-template': { type: 'string' },
      },
    });
  } catch (err) {
    throw new CreateUsageError(`${(err as Error).message.split('\n')[0]} (see --help)`);
  }
}

async function run(argv: string[], out: (line: string) => void): Promise<number> {
  const { values, positionals } = parse(argv);
  if (values.help) return (out(USAGE), 0);
  if (values.version) return (out(version()), 0);
  // Used by this package's prepack: writes template/ from the example.
  if (values['write-template']) {
    const example = fileURLToPath(new URL('../../examples/express-app/', HOME));
    await writeTemplate({ exampleDir: example, assets: fileURLToPath(new URL('files/', HOME)), out: path.resolve(values['write-template']), version: version() });
    return 0;
  }
  const typescript = Boolean(values.typescript || values.ts);
  if (typescript && (values.javascript || values.js)) throw new CreateUsageError('--typescript and --javascript exclude each other: give one');
  if (positionals.length === 0) throw new CreateUsageError('which directory? e.g. npm create cluster-session@latest my-app');
  if (positionals.length > 1) throw new CreateUsageError(`one directory, got ${positionals.length}: ${positionals.join(' ')}`);
  const target = path.resolve(positionals[0]!);
  const root = await templateRoot();
  try {
    const name = scaffold({ template: path.join(root.dir, typescript ? 'ts' : 'js'), target, typescript });
    const relative = path.relative(process.cwd(), target) || '.';
    const rel = relative.startsWith('..') ? target : relative;
    out(
      [
        `Created ${name} in ${target} (${typescript ? 'TypeScript' : 'JavaScript'}, cluster-session ${version()}). Next:`,
        '',
        ...(rel === '.' ? [] : [`  cd ${rel.includes(' ') ? JSON.stringify(rel) : rel}`]),
        '  npm install',
        '  npm start        # then open http://localhost:3000 and sign in as alice / wonderland',
        '  npm test',
        '',
      ].join('\n'),
    );
    return 0;
  } finally {
    if (root.temporary) fs.rmSync(root.dir, { recursive: true, force: true });
  }
}

/** The binary's body; returns the exit code. */
export async function main(argv: string[], io: { out?: (line: string) => void; err?: (line: string) => void } = {}): Promise<number> {
  const out = io.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const err = io.err ?? ((line: string) => process.stderr.write(`${line}\n`));
  try {
    return await run(argv, out);
  } catch (e) {
    if (isClusterSessionError(e)) {
      err(`create-cluster-session: ${e.message}`);
      return e instanceof CreateUsageError ? 2 : 1;
    }
    err(`create-cluster-session: ${(e as Error)?.stack ?? String(e)}`);
    return 1;
  }
}
