import { parseArgs } from 'node:util';
import { suggest } from '@cluster-session/core';
import { CliUsageError } from './errors.ts';

/** Flags of one command, in node:util parseArgs' form (`help` is added to every command). */
type FlagSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;
export type Values = Record<string, string | boolean | string[] | undefined>;

const spelled = (spec: FlagSpec) => Object.keys(spec).map((f) => `--${f}`);

/** Parses `argv` strictly; an unknown flag is named with the flag it most likely meant. */
export function parseFlags(argv: string[], spec: FlagSpec, positionals = false): { values: Values; positionals: string[] } {
  const options = { ...spec, help: { type: 'boolean' as const, short: 'h' } };
  try {
    const r = parseArgs({ args: argv, options, allowPositionals: positionals, strict: true });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (err) {
    const e = err as Error & { code?: string };
    const unknown = /Unknown option '(-{1,2}[^']+)'/.exec(e.message)?.[1];
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && unknown) {
      const guess = suggest(unknown, spelled(options));
      throw new CliUsageError(`unknown flag ${unknown}${guess ? `; did you mean ${guess}?` : ''}`);
    }
    // node's wording up to its advice about '--', which does not apply to these commands.
    throw new CliUsageError(`${e.message.split('\n')[0]!.split('. To specify')[0]!.replace(/\.$/, '')}`);
  }
}

/** A whole-number flag value within [min, max], or undefined when the flag was not given. */
export function intFlag(flag: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new CliUsageError(`--${flag} ${JSON.stringify(value)} is not a whole number from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ' up'}`);
  }
  return Number(value);
}

/** PORT or HOST:PORT (IPv6 hosts in brackets). */
export function addressFlag(flag: string, value: string): number | { host: string; port: number } {
  const m = /^(?:(.+):)?(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new CliUsageError(`--${flag} ${JSON.stringify(value)} is not a port or HOST:PORT`);
  return m[1] ? { host: m[1].replace(/^\[|\]$/g, ''), port } : port;
}

/** A flag whose value is one of `allowed`. */
export function choiceFlag<T extends string>(flag: string, value: unknown, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly unknown[]).includes(value)) {
    const guess = typeof value === 'string' ? suggest(value, allowed) : undefined;
    throw new CliUsageError(`--${flag} ${JSON.stringify(value)} is not one of ${allowed.join(', ')}${guess ? `; did you mean ${guess}?` : ''}`);
  }
  return value as T;
}
