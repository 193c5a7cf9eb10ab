import { z } from 'zod';
import { suggest } from './suggest.ts';

/**
 * The option kit: each package describes its options once, as one zod schema whose fields carry this metadata.
 * The input and output types (z.input / z.output), the environment variables and the words of every startup error
 * all derive from that one schema.
 */
export interface OptionMeta {
  /** What is allowed, in words: "an integer from 0 to 10", "'store' or 'jwt'". */
  allowed: string;
  /** A value that works, written as in code: `'cookie'`, `86400`, `{ port: 3000 }`. */
  example?: string;
  /** The environment variable that fills the option when the input leaves it out. */
  env?: string;
  /** How that variable's text becomes a value (default: the text itself). */
  envType?: 'int' | 'bool' | 'list';
  /** The value is a secret: errors say only that it is wrong, never what it is. */
  secret?: boolean;
  /** The fix, when "change it to an allowed value" is not the whole story. */
  fix?: string;
}

const registry = z.registry<OptionMeta>();

/** Describes one option: `opt(z.number().int().min(1).default(2), { allowed: 'an integer >= 1', example: '2' })`. */
export function opt<T extends z.ZodType>(schema: T, meta: OptionMeta): T {
  registry.add(schema, meta);
  return schema;
}

/** Where options enter and which error class reports a wrong one. */
export interface OptionContext {
  /** The function or command that takes them: "createBalancer", "clusterSession". */
  where: string;
  /** The package's configuration error class (message only: no ZodError is attached, so nothing prints a dump). */
  error: new (message: string) => Error;
}

export interface ParseOptions {
  /** Environment variables for options whose meta names one (resolvers are pure: the caller passes process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Old top-level names kept as documented aliases: { ttl: 'ttlSeconds' }. */
  aliases?: Readonly<Record<string, string>>;
}

/** Deeply read-only: what a resolver returns. */
export type Frozen<T> = T extends (...args: never[]) => unknown
  ? T
  : T extends ReadonlySet<infer U>
    ? ReadonlySet<U>
    : T extends readonly (infer U)[]
      ? readonly Frozen<U>[]
      : T extends object
        ? { readonly [K in keyof T]: Frozen<T[K]> }
        : T;

const isPlain = (v: unknown): v is Record<string, unknown> => {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
};

/**
 * Freezes the objects and arrays the schema built (zod copies them), following the schema: what an app handed in
 * through z.custom or z.any (a client, a logger, a key ring) is its own and stays untouched.
 */
function freezeBuilt(schema: z.ZodType, value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return;
  const d = defOf(schema) as Def & { out?: z.ZodType; valueType?: z.ZodType };
  switch (d.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'catch':
      return freezeBuilt(d.innerType!, value);
    case 'pipe':
      return freezeBuilt(d.out!, value);
    case 'union': {
      // A branch that passes the app's own value through would make any other branch's freeze hit that value.
      const opaque = (o: z.ZodType) => layers(o).some((l) => ['custom', 'any', 'unknown'].includes(defOf(l).type));
      if (!(d.options ?? []).some(opaque)) for (const o of d.options ?? []) freezeBuilt(o, value);
      return;
    }
    case 'object':
      if (!isPlain(value)) return;
      for (const [k, s] of Object.entries(d.shape ?? {})) freezeBuilt(s, value[k]);
      Object.freeze(value);
      return;
    case 'record':
      if (!isPlain(value)) return;
      Object.freeze(value);
      return;
    case 'array':
      if (!Array.isArray(value)) return;
      for (const v of value) freezeBuilt(d.element!, v);
      Object.freeze(value);
      return;
    default:
      // custom, any, unknown, transform: not built by the schema, not ours to freeze.
      return;
  }
}

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

type Segment = PropertyKey;
const pathText = (path: readonly Segment[]) =>
  path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('');

type Def = { type: string; innerType?: z.ZodType; in?: z.ZodType; options?: z.ZodType[]; shape?: Record<string, z.ZodType>; element?: z.ZodType };
const defOf = (s: z.ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;

/** The schema itself and every wrapper inside it (optional, default, pipe, ...), outermost first. */
function layers(schema: z.ZodType): z.ZodType[] {
  const out = [schema];
  for (let s = schema; ; ) {
    const d = defOf(s);
    const inner = d.innerType ?? (d.type === 'pipe' ? d.in : undefined);
    if (!inner) return out;
    out.push(inner);
    s = inner;
  }
}

/** The schemas a path can lead to (a union may offer several). */
function schemasAt(root: z.ZodType, path: readonly Segment[]): z.ZodType[] {
  let current = [root];
  for (const seg of path) {
    const next: z.ZodType[] = [];
    const visit = (s: z.ZodType) => {
      for (const layer of layers(s)) {
        const d = defOf(layer);
        if (d.type === 'union') for (const o of d.options ?? []) visit(o);
        else if (d.type === 'object' && typeof seg === 'string' && d.shape?.[seg]) next.push(d.shape[seg]);
        else if (d.type === 'array' && typeof seg === 'number' && d.element) next.push(d.element);
      }
    };
    current.forEach(visit);
    current = next;
  }
  return current;
}

function metaAt(root: z.ZodType, path: readonly Segment[]): OptionMeta | undefined {
  for (const s of schemasAt(root, path)) for (const layer of layers(s)) {
    const m = registry.get(layer);
    if (m) return m;
  }
  return undefined;
}

function keysAt(root: z.ZodType, path: readonly Segment[]): string[] {
  const keys = new Set<string>();
  const visit = (s: z.ZodType) => {
    for (const layer of layers(s)) {
      const d = defOf(layer);
      if (d.type === 'union') d.options?.forEach(visit);
      if (d.type === 'object') for (const k of Object.keys(d.shape ?? {})) keys.add(k);
    }
  };
  schemasAt(root, path).forEach(visit);
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

/** What a refinement (`ctx.addIssue({ code: 'custom', path, message, params })`) says in place of the meta. */
export interface RuleWords {
  allowed: string;
  fix?: string;
}

/** Throws ctx.error for one wrong option: for the checks a schema cannot express (one option against another). */
export function fail(ctx: OptionContext, problem: Problem): never {
  throw new ctx.error(`${ctx.where}: ${describeProblem(problem)}`);
}

function fromEnvironment(root: z.ZodType, input: Record<string, unknown>, env: ParseOptions['env']): Set<string> {
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

/** Issues worth reporting: inside a failed union, the branch that matched the input's shape says what is wrong. */
function flatten(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue[] {
  const out: z.core.$ZodIssue[] = [];
  for (const issue of issues) {
    if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      const deeper = issue.errors.flat().filter((i) => i.path.length > 0);
      if (deeper.length > 0) {
        out.push(...flatten(deeper.map((i) => ({ ...i, path: [...issue.path, ...i.path] }))));
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
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, ctx: OptionContext, options: ParseOptions = {}): Frozen<z.output<S>> {
  if (input === undefined) input = {};
  if (!isPlain(input)) {
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
  if (parsed.success) {
    freezeBuilt(schema, parsed.data);
    return parsed.data as Frozen<z.output<S>>;
  }

  const lines: string[] = [];
  for (const issue of flatten(parsed.error.issues)) {
    if (issue.code === 'unrecognized_keys') {
      const known = keysAt(schema, issue.path);
      const aliases = issue.path.length === 0 ? (options.aliases ?? {}) : {};
      for (const key of issue.keys) {
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
    const custom = issue.code === 'custom' ? (issue.params as RuleWords | undefined) : undefined;
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
