import { readFileSync } from 'node:fs';
import { isClusterSessionError, suggest } from '@cluster-session/core';
import { CliUsageError } from './errors.ts';
import { help } from './help.ts';

const COMMANDS = ['start', 'reload', 'scale', 'status', 'stop', 'balance', 'export'] as const;
type Command = (typeof COMMANDS)[number];

async function run(command: Command, argv: string[]): Promise<number> {
  // Each command loads only what it needs: `status` does not load the balancer, `balance` not the cluster.
  switch (command) {
    case 'start':
      return (await import('./commands/start.ts')).start(argv);
    case 'reload':
    case 'scale':
    case 'status':
    case 'stop':
      return (await import('./commands/control.ts')).control(command, argv);
    case 'balance':
      return (await import('./commands/balance.ts')).balance(argv);
    case 'export':
      return (await import('./commands/balance.ts')).exportCommand(argv);
  }
}

const version = () => (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * The exit policy of every command: 0 done; 2 the command line or the configuration is wrong (a usage error, any
 * `CS_ERR_*_CONFIG`); 1 anything that failed at run time. A failure is one line on stderr, naming the command,
 * never a stack trace (a message may list several wrong options, one per line).
 */
function report(command: string | undefined, err: unknown): number {
  const usage = err instanceof CliUsageError;
  const config = isClusterSessionError(err) && err.code.endsWith('_CONFIG');
  const where = command !== undefined && (COMMANDS as readonly string[]).includes(command) ? `cluster-session ${command}` : 'cluster-session';
  // The API's own prefix ("startCluster: ") says nothing more on the command line.
  const message = (err instanceof Error ? err.message : String(err)).replace(/^(startCluster|createBalancer|exportConfig): /, '');
  const tail = usage ? ` (see '${where} --help')` : isClusterSessionError(err) ? ` [${rootCode(err)}]` : '';
  process.stderr.write(`${where}: ${message}${tail}\n`);
  return usage || config ? 2 : 1;
}

/** The code of the error that started it all: an app's configuration error reported by a worker, say. */
function rootCode(err: Error & { code: string }): string {
  const cause = (err.cause as { code?: unknown } | undefined)?.code;
  return typeof cause === 'string' && cause.startsWith('CS_ERR_') ? cause : err.code;
}

/** The binary: runs one command and resolves with its exit code (`start` and `balance` only once they stopped). */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '-h' || command === '--help' || command === 'help') return help('main');
    if (command === '-v' || command === '--version') {
      process.stdout.write(`cluster-session ${version()}\n`);
      return 0;
    }
    if (!(COMMANDS as readonly string[]).includes(command)) {
      const guess = suggest(command, COMMANDS);
      throw new CliUsageError(`unknown command ${JSON.stringify(command)}${guess ? `; did you mean ${guess}?` : `; commands: ${COMMANDS.join(', ')}`}`);
    }
    return await run(command as Command, rest);
  } catch (err) {
    return report(command, err);
  }
}
