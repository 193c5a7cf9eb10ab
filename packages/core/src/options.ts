import * as v from 'valibot';
import { suggest } from './suggest.ts';
import { arraysForObjects, keysAt, wordsAt, type Key } from './walk.ts';
import { wordsOfRule, type OptionMeta } from './words.ts';

/**
 * The option kit: each package describes its options once, as one valibot schema whose options carry their words
 * (`words()` in their pipe, words.ts). The input and output types (`v.InferInput`, `v.InferOutput`), the
 * environment variables and the words of every startup error all derive from that one schema.
 */

/** Where options enter and which error class reports a wrong one. */
export interface OptionContext {
  /** The function or command that takes them: "createBalancer", "clusterSession". */
  where: string;
  /** The package's configuration error class (a message only: no cause is attached, so nothing prints a dump). */
  error: new (message: string) => Error;
}

export interface ParseOptions {
  /** Environment variables for options whose meta names one (resolvers are pure: the caller passes process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Old top-level names kept as documented aliases: { ttl: 'ttlSeconds' }. */
  aliases?: Readonly<Record<string, string>>;
}

/** Deeply read-only: what a resolver returns (the schema freezes what it builds). */
export type Frozen<T> = T extends (...args: never[]) => unknown
  ? T
  : T extends ReadonlySet<infer U>
    ? ReadonlySet<U>
    : T extends readonly (infer U)[]
      ? readonly Frozen<U>[]
      : T extends object
        ? { readonly [K in keyof T]: Frozen<T[K]> }
        : T;

/** How a value is shown in an error: strings quoted, objects as JSON, secrets never. */
export function show(value: unknown): string {
  if (value === undefined) return 'missing';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (value instanceof Set) return `Set(${show([...value])})`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

const pathText = (path: readonly Key[]) => path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');

function valueAt(input: unknown, path: readonly Key[]): unknown {
  let v = input;
  for (const p of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

/** One wrong option, in the words every package uses. */
export interface Problem {
  /** `health.interval`, `upstreams[0].url`. */
  option: string;
  value: unknown;
  allowed: string;
  example?: string;
  /** The option the example is written for, when its words are an enclosing option's (default: `option`). */
  exampleOf?: string;
  /** The env variable of the option; `fromEnv` when the value came from it. */
  env?: string;
  fromEnv?: boolean;
  secret?: boolean;
  fix?: string;
}

const unquote = (example: string) => example.replace(/^'(.*)'$/, '$1');

/** "option X (env Y) is V: expected A. Example: E. Fix: F." — the sentence of every startup error. */
export function describeProblem(p: Problem): string {
  const env = p.env ? (p.fromEnv ? ` (env ${p.env})` : ` (or env ${p.env})`) : '';
  const value = p.secret && p.value !== undefined ? '[redacted]' : show(p.value);
  const example = p.example ? (p.fromEnv && p.env ? ` Example: ${p.env}=${unquote(p.example)}.` : ` Example: ${p.exampleOf ?? p.option}: ${p.example}.`) : '';
  const fix =
    p.fix ??
    (p.fromEnv && p.env
      ? `set ${p.env} to an allowed value, or unset it`
      : p.value === undefined
        ? `pass ${p.option}${p.env ? ` or set ${p.env}` : ''}`
        : `change ${p.option} to an allowed value`);
  return `option ${p.option}${env} is ${value}: expected ${p.allowed}.${example} Fix: ${fix}.`;
}

/** Throws ctx.error for one wrong option: for the checks a schema cannot express (one option against another). */
export function fail(ctx: OptionContext, problem: Problem): never {
  throw new ctx.error(`${ctx.where}: ${describeProblem(problem)}`);
}

function fromEnvironment(root: v.GenericSchema, input: Record<string, unknown>, env: ParseOptions['env']): Set<string> {
  const filled = new Set<string>();
  if (!env) return filled;
  for (const key of keysAt(root, [])) {
    const meta = wordsAt(root, [key]);
    const raw = meta?.env ? env[meta.env] : undefined;
    if (input[key] !== undefined || raw === undefined || raw.trim() === '') continue;
    const text = raw.trim();
    let value: unknown = text;
    // A text that does not convert stays text, so the schema reports it with the variable's name.
    if (meta!.envType === 'int' && /^\d+$/.test(text)) value = Number(text);
    else if (meta!.envType === 'bool' && ['1', 'true', '0', 'false'].includes(text)) value = text === '1' || text === 'true';
    else if (meta!.envType === 'list') value = text.split(',').map((s) => s.trim()).filter(Boolean);
    input[key] = value;
    filled.add(key);
  }
  return filled;
}

type Issue = v.BaseIssue<unknown>;
interface Found {
  /** From the root of the options (valibot gives a union's inner issues their paths from the union). */
  path: Key[];
  /** None for an array where an object belongs (which valibot's objects take). */
  issue?: Issue;
}

/** Issues worth reporting: inside a failed union, the alternatives that went deeper say what is wrong. */
function flatten(issues: readonly Issue[], prefix: readonly Key[] = []): Found[] {
  const out: Found[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...(issue.path ?? []).map((p) => p.key as Key)];
    // A variant whose key matches none speaks of the whole object, as one of the forms the option takes.
    if (issue.type === 'variant') path.pop();
    const deeper = issue.type === 'union' ? (issue.issues ?? []).filter((i) => (i.path?.length ?? 0) > 0) : [];
    out.push(...(deeper.length > 0 ? flatten(deeper, path) : [{ issue, path }]));
  }
  return out;
}

/** valibot's words for a type, in ours (used where an option has none of its own). */
const TYPES: Record<string, string> = { Object: 'an object', Array: 'an array', number: 'a number', string: 'a string', boolean: 'true or false' };

/** Deep-freezes what the parse built; what the input handed in as it is (a client, a logger) stays the app's. */
function freeze<T>(out: T, input: unknown): T {
  if (out === input || typeof out !== 'object' || out === null || Object.isFrozen(out)) return out;
  const given = typeof input === 'object' && input !== null ? (input as Record<string, unknown>) : {};
  for (const key of Object.keys(out)) freeze((out as Record<string, unknown>)[key], given[key]);
  return Object.freeze(out);
}

/** What one parse knows to word its errors: the schema, the input after env and aliases, the names as written. */
interface Explaining {
  schema: v.GenericSchema;
  merged: Record<string, unknown>;
  filled: Set<string>;
  aliases: Readonly<Record<string, string>>;
  named: (path: readonly Key[]) => string;
}

/** valibot names the first unknown key of an object; every one is named here, with a did-you-mean. */
function unknownKeys(e: Explaining, at: readonly Key[], object: Readonly<Record<string, unknown>>, first: string): string[] {
  const known = keysAt(e.schema, at, object);
  const aliases = at.length === 0 ? e.aliases : {};
  return Object.keys(object)
    .filter((k) => k === first || !known.includes(k))
    .map((key) => {
      const near = suggest(key, [...known, ...Object.keys(aliases)]);
      // Near an old name: point at the new one.
      const guess = near !== undefined && Object.hasOwn(aliases, near) ? aliases[near] : near;
      const name = e.named([...at, key]);
      return guess
        ? `unknown option ${name}: did you mean ${e.named([...at, guess])}? Fix: rename it to ${guess}.`
        : `unknown option ${name}. Fix: remove it; the options here are ${known.join(', ')}.`;
    });
}

/** The line of one wrong option: the nearest described option on its path speaks for it. */
function wrongValue(e: Explaining, { path, issue }: Found): string {
  const described = path
    .map((_, i) => path.slice(0, path.length - i))
    .flatMap((at) => {
      const meta = wordsAt(e.schema, at);
      return meta ? [{ at, meta }] : [];
    });
  const meta = described[0]?.meta;
  const ruled = issue && wordsOfRule(issue);
  const top = typeof path[0] === 'string' ? path[0] : undefined;
  const topMeta = top === undefined ? undefined : wordsAt(e.schema, [top]);
  const fix = ruled?.fix ?? meta?.fix;
  const expected = issue ? (issue.expected ?? issue.message) : 'Object';
  return describeProblem({
    option: path.length ? e.named(path) : 'options',
    value: valueAt(e.merged, path),
    // A rule between options brings its own words.
    allowed: ruled?.allowed ?? meta?.allowed ?? TYPES[expected] ?? expected,
    // An example of the option the words belong to.
    ...(meta?.example && !ruled ? { example: meta.example, exampleOf: e.named(described[0]!.at) } : {}),
    ...(topMeta?.env ? { env: topMeta.env, fromEnv: e.filled.has(top!) } : {}),
    // A secret anywhere above keeps the value hidden.
    ...(described.some((d) => d.meta.secret) ? { secret: true } : {}),
    ...(fix ? { fix } : {}),
  });
}

/**
 * Validates `input` once, where it enters: unknown keys are refused with a did-you-mean, environment variables
 * fill what the input leaves out, aliases map old names to new ones, and the result is frozen. Throws ctx.error
 * with one line per wrong option (named, with its env variable, its value unless secret, what is allowed, an
 * example and the fix).
 */
export function parseOptions<S extends v.GenericSchema>(schema: S, input: unknown, ctx: OptionContext, options: ParseOptions = {}): Frozen<v.InferOutput<S>> {
  if (input === undefined) input = {};
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ctx.error(`${ctx.where}: options must be an object, got ${show(input)}. Fix: pass an object of options.`);
  }
  const merged: Record<string, unknown> = { ...input };
  // An error names an option as the input wrote it: an old name stays the old name.
  const written = new Map<string, string>();
  for (const [old, now] of Object.entries(options.aliases ?? {})) {
    if (merged[old] === undefined) continue;
    if (merged[now] !== undefined) {
      throw new ctx.error(`${ctx.where}: options ${old} and ${now} are both given; ${old} is the old name of ${now}. Fix: keep only ${now}.`);
    }
    merged[now] = merged[old];
    delete merged[old];
    written.set(now, old);
  }
  const named = (path: readonly Key[]) => pathText(path.map((p, i) => (i === 0 && typeof p === 'string' ? (written.get(p) ?? p) : p)));
  const filled = fromEnvironment(schema, merged, options.env);
  const misplaced = arraysForObjects(schema, merged);
  const parsed = v.safeParse(schema, merged);
  if (parsed.success && misplaced.length === 0) return freeze(parsed.output, merged) as Frozen<v.InferOutput<S>>;

  const e: Explaining = { schema, merged, filled, aliases: options.aliases ?? {}, named };
  const inside = (path: readonly Key[]) => misplaced.some((m) => m.every((k, i) => path[i] === k));
  const found: Found[] = [...misplaced.map((path) => ({ path })), ...flatten(parsed.issues ?? []).filter((f) => !inside(f.path))];
  const lines = new Set<string>();
  const seen = new Set<string>();
  for (const f of found) {
    const last = f.issue?.path?.at(-1);
    if (f.issue?.type === 'strict_object' && f.issue.expected === 'never' && last) {
      for (const line of unknownKeys(e, f.path.slice(0, -1), last.input as Record<string, unknown>, String(last.key))) lines.add(line);
    } else if (!seen.has(named(f.path))) {
      // One line an option: the first thing wrong with it (a pipe goes on checking after a failed check).
      seen.add(named(f.path));
      lines.add(wrongValue(e, f));
    }
  }
  const all = [...lines];
  throw new ctx.error(all.length === 1 ? `${ctx.where}: ${all[0]}` : `${ctx.where}: invalid options:\n  - ${all.join('\n  - ')}`);
}
