/**
 * The schema builder of the option kit: the dozen validators our option objects need, their input and output
 * types inferred (`Input<S>`, `Output<S>`). Written here rather than taken from zod, which this suite used at
 * first: loading zod costs a process ~17 MiB of RSS where nothing else is loaded (the balancer at start: 61 MiB
 * without it, 79 MiB with it) and ~6 MiB in a worker that already runs express, for the job of checking one
 * object at startup.
 *
 * Every object, array and record a parse builds is frozen; values an app hands in (`custom`, `any`) pass
 * through untouched.
 */
import type { OptionMeta, RuleWords } from './words.ts';

export type Segment = string | number;

/** One thing wrong with the input; `branches` holds the issues of each alternative of a failed union. */
export interface Issue {
  code: 'type' | 'check' | 'unknown_keys' | 'union' | 'custom';
  path: Segment[];
  /** What was expected, in words (used when the option has no meta). */
  message: string;
  keys?: string[];
  branches?: Issue[][];
  words?: RuleWords;
}

/** What run() returns when it cannot give a value (the issues say why). */
export interface Failed {
  readonly failed: true;
}
const FAIL: Failed = Object.freeze({ failed: true });
export type Result<T> = T | Failed;
const isFailed = (v: unknown): v is Failed => v === FAIL;

/** The state of one parse: where it is, and what is wrong so far. */
export interface ParseContext {
  issues: Issue[];
  path: Segment[];
}

export interface RefineCtx {
  /** Reports a rule between options; `path` is relative to the value refined. */
  addIssue(issue: { path: Segment[]; message: string; words?: RuleWords }): void;
}

/** What a schema wraps or leads to: how the kit finds the words and the keys at a path. */
export interface Parts {
  /** The schema a wrapper (optional, default, refine, transform, the input side of pipe) wraps. */
  inner?: AnySchema;
  /** The output side of a pipe. */
  next?: AnySchema;
  /** The alternatives of a union. */
  options?: readonly AnySchema[];
  shape?: Readonly<Record<string, AnySchema>>;
  /** The element of an array, the values of a record. */
  element?: AnySchema;
}

const push = (ctx: ParseContext, code: Issue['code'], message: string, extra: Partial<Issue> = {}): Failed => {
  ctx.issues.push({ code, path: [...ctx.path], message, ...extra });
  return FAIL;
};

export abstract class Schema<In, Out = In> {
  declare readonly _in: In;
  declare readonly _out: Out;
  /** The words of the option this schema describes (set by opt()). */
  meta: OptionMeta | undefined;
  readonly parts: Parts;

  constructor(parts: Parts = {}) {
    this.parts = parts;
  }

  /** Parses `value`, recording what is wrong in ctx; FAIL when it cannot give a value. */
  abstract run(value: unknown, ctx: ParseContext): Result<Out>;

  safeParse(value: unknown): { success: true; data: Out } | { success: false; issues: Issue[] } {
    const ctx: ParseContext = { issues: [], path: [] };
    const data = this.run(value, ctx);
    return isFailed(data) || ctx.issues.length > 0 ? { success: false, issues: ctx.issues } : { success: true, data };
  }

  optional(): Schema<In | undefined, Out | undefined> {
    return new WrapSchema(this, (v, ctx) => (v === undefined ? undefined : this.run(v, ctx)));
  }

  /** `fallback` (an output value) when the input leaves the option out. */
  default(fallback: Exclude<Out, undefined>): Schema<In | undefined, Exclude<Out, undefined>> {
    return new WrapSchema(this, (v, ctx) => (v === undefined ? fallback : (this.run(v, ctx) as Result<Exclude<Out, undefined>>)));
  }

  /** `fallback` as the input (so an object's own defaults apply) when the input leaves the option out. */
  prefault(fallback: In): Schema<In | undefined, Out> {
    return new WrapSchema(this, (v, ctx) => this.run(v === undefined ? fallback : v, ctx));
  }

  transform<T>(fn: (value: Out) => T): Schema<In, T> {
    return new WrapSchema(this, (v, ctx) => {
      const out = this.run(v, ctx);
      return isFailed(out) ? FAIL : fn(out);
    });
  }

  pipe<T>(next: Schema<Out, T>): Schema<In, T> {
    return new WrapSchema(
      this,
      (v, ctx) => {
        const out = this.run(v, ctx);
        return isFailed(out) ? FAIL : next.run(out, ctx);
      },
      next,
    );
  }

  refine(ok: (value: Out) => boolean, message = 'a valid value'): Schema<In, Out> {
    return this.superRefine((v, r) => {
      if (!ok(v)) r.addIssue({ path: [], message });
    });
  }

  superRefine(rule: (value: Out, ctx: RefineCtx) => void): Schema<In, Out> {
    return new WrapSchema(this, (v, ctx) => {
      const out = this.run(v, ctx);
      if (isFailed(out)) return FAIL;
      const before = ctx.issues.length;
      rule(out, {
        addIssue: (i) => void ctx.issues.push({ code: 'custom', path: [...ctx.path, ...i.path], message: i.message, ...(i.words ? { words: i.words } : {}) }),
      });
      return ctx.issues.length > before ? FAIL : out;
    });
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the widest schema
export type AnySchema = Schema<any, any>;
export type Input<S extends AnySchema> = S['_in'];
export type Output<S extends AnySchema> = S['_out'];

export class WrapSchema<In, Out> extends Schema<In, Out> {
  readonly #run: (value: unknown, ctx: ParseContext) => Result<Out>;
  constructor(inner: AnySchema, run: (value: unknown, ctx: ParseContext) => Result<Out>, next?: AnySchema) {
    super(next ? { inner, next } : { inner });
    this.#run = run;
  }
  run(value: unknown, ctx: ParseContext): Result<Out> {
    return this.#run(value, ctx);
  }
}

export type Check<T> = readonly [(v: T) => boolean, string];

/** A leaf: a type test, then checks, each with the words of what it wants; immutable (each check is a new leaf). */
export class LeafSchema<T> extends Schema<T, T> {
  protected readonly spec: { test: (v: unknown) => boolean; expected: string; checks: readonly Check<T>[]; map?: (v: T) => T };
  constructor(spec: LeafSchema<T>['spec']) {
    super();
    this.spec = spec;
  }
  protected with(change: Partial<LeafSchema<T>['spec']>): this {
    return new (this.constructor as new (spec: LeafSchema<T>['spec']) => this)({ ...this.spec, ...change });
  }
  protected check(ok: (v: T) => boolean, words: string): this {
    return this.with({ checks: [...this.spec.checks, [ok, words]] });
  }
  run(value: unknown, ctx: ParseContext): Result<T> {
    if (!this.spec.test(value)) return push(ctx, 'type', this.spec.expected);
    const v = this.spec.map ? this.spec.map(value as T) : (value as T);
    for (const [ok, words] of this.spec.checks) if (!ok(v)) return push(ctx, 'check', words);
    return v;
  }
}

export class NumberSchema extends LeafSchema<number> {
  int(): this {
    return this.check(Number.isInteger, 'an integer');
  }
  min(n: number): this {
    return this.check((v) => v >= n, `a number >= ${n}`);
  }
  max(n: number): this {
    return this.check((v) => v <= n, `a number <= ${n}`);
  }
  finite(): this {
    return this.check(Number.isFinite, 'a finite number');
  }
}

export class StringSchema extends LeafSchema<string> {
  min(n: number): this {
    return this.check((v) => v.length >= n, `a string of at least ${n} characters`);
  }
  max(n: number): this {
    return this.check((v) => v.length <= n, `a string of at most ${n} characters`);
  }
  regex(re: RegExp): this {
    return this.check((v) => re.test(v), `a string matching ${re}`);
  }
  startsWith(prefix: string): this {
    return this.check((v) => v.startsWith(prefix), `a string starting with ${JSON.stringify(prefix)}`);
  }
  /** Lower-cases the value before the checks that follow (and in the result). */
  toLowerCase(): this {
    const prev = this.spec.map;
    return this.with({ map: (v) => (prev ? prev(v) : v).toLowerCase() });
  }
}

/** An object to read keys from: any non-array object (process.env, for one, is not a plain object). */
export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export type Shape = Record<string, AnySchema>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
type Side = '_in' | '_out';
type OptionalKeys<S extends Shape, W extends Side> = { [K in keyof S]: undefined extends S[K][W] ? K : never }[keyof S];
export type ObjectIn<S extends Shape> = Simplify<{ [K in Exclude<keyof S, OptionalKeys<S, '_in'>>]: S[K]['_in'] } & { [K in OptionalKeys<S, '_in'>]?: S[K]['_in'] }>;
export type ObjectOut<S extends Shape> = Simplify<
  { readonly [K in Exclude<keyof S, OptionalKeys<S, '_out'>>]: S[K]['_out'] } & { readonly [K in OptionalKeys<S, '_out'>]?: S[K]['_out'] }
>;

export class ObjectSchema<S extends Shape> extends Schema<ObjectIn<S>, ObjectOut<S>> {
  readonly #strict: boolean;
  constructor(shape: S, strict: boolean) {
    super({ shape });
    this.#strict = strict;
  }
  run(value: unknown, ctx: ParseContext): Result<ObjectOut<S>> {
    if (!isRecord(value)) return push(ctx, 'type', 'an object');
    const shape = this.parts.shape!;
    const unknown = this.#strict ? Object.keys(value).filter((k) => !Object.hasOwn(shape, k)) : [];
    if (unknown.length > 0) push(ctx, 'unknown_keys', 'known options only', { keys: unknown });
    const out: Record<string, unknown> = this.#strict ? {} : { ...value };
    let failed = unknown.length > 0;
    for (const [key, schema] of Object.entries(shape)) {
      ctx.path.push(key);
      const v = schema.run(value[key], ctx);
      ctx.path.pop();
      if (isFailed(v)) failed = true;
      else if (v !== undefined) out[key] = v;
    }
    return failed ? FAIL : (Object.freeze(out) as ObjectOut<S>);
  }
}

export class UnionSchema<O extends readonly AnySchema[]> extends Schema<O[number]['_in'], O[number]['_out']> {
  readonly #pick: ((value: unknown) => AnySchema | undefined) | undefined;
  constructor(options: O, pick?: (value: unknown) => AnySchema | undefined) {
    super({ options });
    this.#pick = pick;
  }
  run(value: unknown, ctx: ParseContext): Result<O[number]['_out']> {
    const chosen = this.#pick?.(value);
    if (chosen) return chosen.run(value, ctx);
    const branches: Issue[][] = [];
    for (const option of this.parts.options!) {
      const sub: ParseContext = { issues: [], path: [...ctx.path] };
      const v = option.run(value, sub);
      if (!isFailed(v) && sub.issues.length === 0) return v;
      branches.push(sub.issues);
    }
    return push(ctx, 'union', 'one of the allowed forms', { branches });
  }
}

export class ArraySchema<E extends AnySchema> extends Schema<E['_in'][], readonly E['_out'][]> {
  readonly #min: number;
  constructor(element: E, min = 0) {
    super({ element });
    this.#min = min;
  }
  min(n: number): ArraySchema<E> {
    return new ArraySchema(this.parts.element as E, n);
  }
  run(value: unknown, ctx: ParseContext): Result<readonly E['_out'][]> {
    if (!Array.isArray(value)) return push(ctx, 'type', 'an array');
    if (value.length < this.#min) return push(ctx, 'check', `an array of at least ${this.#min}`);
    const out: unknown[] = [];
    let failed = false;
    value.forEach((item, i) => {
      ctx.path.push(i);
      const v = this.parts.element!.run(item, ctx);
      ctx.path.pop();
      if (isFailed(v)) failed = true;
      else out.push(v);
    });
    return failed ? FAIL : Object.freeze(out);
  }
}

export class RecordSchema<V extends AnySchema> extends Schema<Record<string, V['_in']>, Readonly<Record<string, V['_out']>>> {
  constructor(values: V) {
    super({ element: values });
  }
  run(value: unknown, ctx: ParseContext): Result<Readonly<Record<string, V['_out']>>> {
    if (!isRecord(value)) return push(ctx, 'type', 'an object');
    const out: Record<string, unknown> = {};
    let failed = false;
    for (const [k, item] of Object.entries(value)) {
      ctx.path.push(k);
      const v = this.parts.element!.run(item, ctx);
      ctx.path.pop();
      if (isFailed(v)) failed = true;
      else out[k] = v;
    }
    return failed ? FAIL : Object.freeze(out);
  }
}

type Literal = string | number | boolean;
const leaf = <T>(test: (v: unknown) => boolean, expected: string) => new LeafSchema<T>({ test, expected, checks: [] });

export const number = () => new NumberSchema({ test: (v) => typeof v === 'number' && !Number.isNaN(v), expected: 'a number', checks: [] });
export const string = () => new StringSchema({ test: (v) => typeof v === 'string', expected: 'a string', checks: [] });
export const boolean = () => leaf<boolean>((v) => typeof v === 'boolean', 'true or false');
export const literal = <const T extends Literal>(value: T) => leaf<T>((v) => v === value, JSON.stringify(value));
export const enumOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  leaf<T[number]>((v) => (values as readonly unknown[]).includes(v), `one of ${values.map((v) => `'${v}'`).join(', ')}`);
/** A value the app hands in, checked by `test` and passed through as it is (a client, a logger, a function). */
export const custom = <T>(test: (v: unknown) => boolean = () => true) => leaf<T>(test, 'a valid value');
/** Anything, passed through as it is. */
export const unknown = () => leaf<unknown>(() => true, 'anything');
/** An object whose keys are all known (an unknown one is reported, with a did-you-mean). */
export const strictObject = <S extends Shape>(shape: S) => new ObjectSchema(shape, true);
/** An object that may carry keys beyond `shape` (passed through). */
export const looseObject = <S extends Shape>(shape: S) => new ObjectSchema(shape, false);
export const union = <const O extends readonly AnySchema[]>(options: O) => new UnionSchema(options);
/** A union of objects told apart by the value of `key`, so an error speaks of the branch the input meant. */
export const discriminatedUnion = <const O extends readonly ObjectSchema<Shape>[]>(key: string, options: O) =>
  new UnionSchema(options, (v) => (isRecord(v) ? options.find((o) => o.parts.shape![key]!.safeParse(v[key]).success) : undefined));
export const array = <E extends AnySchema>(element: E) => new ArraySchema(element);
export const record = <V extends AnySchema>(values: V) => new RecordSchema(values);
