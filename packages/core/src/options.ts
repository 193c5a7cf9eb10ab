import { isRecord, type AnySchema, type Issue, type Output, type Segment } from './schema.ts';
import { suggest } from './suggest.ts';
import type { OptionMeta, RuleWords } from './words.ts';

/**
 * The option kit: each package describes its options once, as one schema (schema.ts) whose fields carry their
 * words. The input and output types, the environment variables and the words of every startup error all derive
 * from that one schema.
 */

/** Describes one option: `opt(s.number().int().min(1).default(2), { allowed: 'an integer >= 1', example: '2' })`. */
export function opt<T extends AnySchema>(schema: T, meta: OptionMeta): T {
  schema.meta = meta;
  return schema;
}

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

const pathText = (path: readonly Segment[]) => path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');

/** The schema and every wrapper inside it (optional, default, refine, the input side of a pipe), outermost first. */
function layers(schema: AnySchema): AnySchema[] {
  const out: AnySchema[] = [];
  for (let s: AnySchema | undefined = schema; s; s = s.parts.inner) out.push(s);
  return out;
}

/** Every schema a value at this level may be checked by: the layers, a union's alternatives, a pipe's output. */
function forms(schema: AnySchema): AnySchema[] {
  const out: AnySchema[] = [];
  const visit = (s: AnySchema) => {
    for (const layer of layers(s)) {
      out.push(layer);
      layer.parts.options?.forEach(visit);
      if (layer.parts.next) visit(layer.parts.next);
    }
  };
  visit(schema);
  return out;
}

/** The schemas a path can lead to (a union may offer several). */
function schemasAt(root: AnySchema, path: readonly Segment[]): AnySchema[] {
  let current = [root];
  for (const seg of path) {
    const next: AnySchema[] = [];
    for (const f of current.flatMap(forms)) {
      const shape = f.parts.shape;
      if (typeof seg === 'string' && shape && Object.hasOwn(shape, seg)) next.push(shape[seg]!);
      else if (f.parts.element && !shape) next.push(f.parts.element);
    }
    current = next;
  }
  return current;
}

function metaAt(root: AnySchema, path: readonly Segment[]): OptionMeta | undefined {
  for (const s of schemasAt(root, path)) for (const layer of layers(s)) if (layer.meta) return layer.meta;
  return undefined;
}

function keysAt(root: AnySchema, path: readonly Segment[]): string[] {
  const keys = new Set<string>();
  for (const f of schemasAt(root, path).flatMap(forms)) for (const k of Object.keys(f.parts.shape ?? {})) keys.add(k);
  return [...keys];
}

function valueAt(input: unknown, path: readonly Segment[]): unknown {
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
  const example = p.example ? (p.fromEnv && p.env ? ` Example: ${p.env}=${unquote(p.example)}.` : ` Example: ${p.option}: ${p.example}.`) : '';
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

function fromEnvironment(root: AnySchema, input: Record<string, unknown>, env: ParseOptions['env']): Set<string> {
  const filled = new Set<string>();
  if (!env) return filled;
  for (const key of keysAt(root, [])) {
    const meta = metaAt(root, [key]);
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

/** Issues worth reporting: inside a failed union, the alternative that went deepest says what is wrong. */
function flatten(issues: readonly Issue[]): Issue[] {
  const out: Issue[] = [];
  for (const issue of issues) {
    if (issue.code === 'union' && issue.branches) {
      const deeper = issue.branches.flat().filter((i) => i.path.length > issue.path.length);
      if (deeper.length > 0) {
        out.push(...flatten(deeper));
        continue;
      }
    }
    out.push(issue);
  }
  return out;
}

/**
 * Validates `input` once, where it enters: unknown keys are refused with a did-you-mean, environment variables
 * fill what the input leaves out, aliases map old names to new ones, and the result is frozen. Throws ctx.error
 * with one line per wrong option (named, with its env variable, its value unless secret, what is allowed, an
 * example and the fix).
 */
export function parseOptions<S extends AnySchema>(schema: S, input: unknown, ctx: OptionContext, options: ParseOptions = {}): Frozen<Output<S>> {
  if (input === undefined) input = {};
  if (!isRecord(input)) {
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
  const named = (path: readonly Segment[]) => pathText(path.map((p, i) => (i === 0 && typeof p === 'string' ? (written.get(p) ?? p) : p)));
  const filled = fromEnvironment(schema, merged, options.env);
  const parsed = schema.safeParse(merged);
  if (parsed.success) return parsed.data as Frozen<Output<S>>;

  const lines: string[] = [];
  for (const issue of flatten(parsed.issues)) {
    if (issue.code === 'unknown_keys') {
      const known = keysAt(schema, issue.path);
      const aliases = issue.path.length === 0 ? (options.aliases ?? {}) : {};
      for (const key of issue.keys ?? []) {
        const name = named([...issue.path, key]);
        const near = suggest(key, [...known, ...Object.keys(aliases)]);
        // Near an old name: point at the new one.
        const guess = near !== undefined && Object.hasOwn(aliases, near) ? aliases[near] : near;
        lines.push(
          guess
            ? `unknown option ${name}: did you mean ${named([...issue.path, guess])}? Fix: rename it to ${guess}.`
            : `unknown option ${name}. Fix: remove it; the options here are ${known.join(', ')}.`,
        );
      }
      continue;
    }
    // The nearest described option on the path speaks for it; a secret anywhere above keeps the value hidden.
    const described = issue.path.map((_, i) => metaAt(schema, issue.path.slice(0, issue.path.length - i))).filter((m) => m !== undefined);
    const meta = described[0];
    const custom: RuleWords | undefined = issue.words;
    const top = typeof issue.path[0] === 'string' ? issue.path[0] : undefined;
    const topMeta = top === undefined ? undefined : metaAt(schema, [top]);
    lines.push(
      describeProblem({
        option: issue.path.length ? named(issue.path) : 'options',
        value: valueAt(merged, issue.path),
        // A rule between options (a refinement) brings its own words in params.
        allowed: custom?.allowed ?? meta?.allowed ?? issue.message,
        ...(meta?.example && !custom ? { example: meta.example } : {}),
        ...(topMeta?.env ? { env: topMeta.env, fromEnv: filled.has(top!) } : {}),
        ...(described.some((m) => m.secret) ? { secret: true } : {}),
        ...((custom?.fix ?? meta?.fix) ? { fix: custom?.fix ?? meta?.fix } : {}),
      }),
    );
  }
  throw new ctx.error(lines.length === 1 ? `${ctx.where}: ${lines[0]}` : `${ctx.where}: invalid options:\n  - ${lines.join('\n  - ')}`);
}
