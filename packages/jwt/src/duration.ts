import * as v from 'valibot';
import { JwtConfigError } from './errors.ts';

/** Seconds, or a string with its unit: "90s", "15m", "12h", "7d". */
export type Duration = number | string;

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const TEXT = /^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$/;

const toSeconds = (value: Duration): number => {
  if (typeof value === 'number') return value;
  const m = TEXT.exec(value)!;
  return Number(m[1]) * UNITS[m[2] || 's']!;
};

/** A duration option in whole seconds, for the options schema. */
export function durationSchema({ allowZero = false, max = Number.MAX_SAFE_INTEGER } = {}) {
  return v.pipe(
    v.union([v.pipe(v.number(), v.finite(), v.minValue(0)), v.pipe(v.string(), v.regex(TEXT))]),
    v.transform((d) => Math.floor(toSeconds(d))),
    v.minValue(allowZero ? 0 : 1),
    v.maxValue(max),
  );
}

/** Parses a duration argument of the ring's sign/verify calls into whole seconds; `option` names it in the error. */
export function seconds(value: Duration, option: string, { allowZero = false } = {}): number {
  const n = (typeof value === 'number' || (typeof value === 'string' && TEXT.test(value))) ? toSeconds(value) : undefined;
  if (n === undefined || !Number.isFinite(n) || n < 0 || (!allowZero && n === 0))
    throw new JwtConfigError(
      `${option}: expected seconds (a ${allowZero ? 'non-negative' : 'positive'} number) or a duration like "15m", "12h", "7d"; got ${JSON.stringify(value)}.`,
    );
  return Math.floor(n);
}
