import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CliConfigError } from './errors.ts';

/**
 * Reads a `--config FILE`: JSON (`.json`) or YAML (anything else; YAML is a superset of JSON), one object of
 * the command's options. Only the file itself is checked here (it exists, parses, is an object); the options
 * in it are validated by the package they belong to (the balancer's or the cluster's schema), which names a
 * wrong one with its fix. Read again on every reload, so a fixed file is picked up by the next SIGHUP.
 */
export function readConfigFile(file: string): Record<string, unknown> {
  const where = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(where, 'utf8');
  } catch (err) {
    throw new CliConfigError(`--config ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); pass the path of a JSON or YAML file`);
  }
  let value: unknown;
  try {
    value = /\.json$/i.test(where) ? JSON.parse(text) : parseYaml(text, { prettyErrors: false });
  } catch (err) {
    const first = (err as Error).message.split('\n')[0];
    throw new CliConfigError(`--config ${file}: not valid ${/\.json$/i.test(where) ? 'JSON' : 'YAML'} (${first}); fix the file`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new CliConfigError(`--config ${file}: expected an object of options at the top (got ${Array.isArray(value) ? 'a list' : value === null ? 'nothing' : typeof value}); see the command's --help`);
  }
  return value as Record<string, unknown>;
}
