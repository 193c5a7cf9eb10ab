import { JwtConfigError } from './errors.ts';

/** Seconds, or a string such as "90s", "15m", "12h", "7d". */
export type Duration = number | string;

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Parses a duration option into whole seconds; `option` names it in the error. */
export function seconds(value: Duration, option: string, { allowZero = false } = {}): number {
  let n: number | undefined;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$/.exec(value);
    if (m) n = Number(m[1]) * UNITS[m[2] || 's']!;
  }
  if (n === undefined || !Number.isFinite(n) || n < 0 || (!allowZero && n === 0))
    throw new JwtConfigError(
      `${option}: expected seconds (a ${allowZero ? 'non-negative' : 'positive'} number) or a duration like "15m", "12h", "7d"; got ${JSON.stringify(value)}.`,
    );
  return Math.floor(n);
}
