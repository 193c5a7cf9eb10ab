import * as v from 'valibot';

/** The words of one option, from which its startup errors are written (see options.ts). */
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

/** What a rule between options says in place of the option's own words. */
export interface RuleWords {
  allowed: string;
  fix?: string;
}

/**
 * The words of an option, as the last item of its pipe:
 * `v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), words({ allowed: 'an integer >= 1', example: '2' })), 2)`.
 * valibot keeps metadata on the schema without running it; the kit reads it back at the path of a wrong value.
 */
export const words = <T>(meta: OptionMeta) => v.metadata<T, { readonly words: OptionMeta }>({ words: meta });

/** The words of each rule, by its check function (a valibot issue names the function that failed). */
const ruleWords = new WeakMap<object, RuleWords>();

/**
 * A rule between the options of one object, as an item of its pipe: when `ok` is false, the option at `key` is
 * reported with `rule`'s words. It runs only once every option of the object is valid on its own.
 */
export function rule<T extends Record<string, unknown>>(key: keyof T & string, said: RuleWords, ok: (value: T) => boolean) {
  const requirement = (value: T) => ok(value);
  ruleWords.set(requirement, said);
  // The key is checked by the signature; valibot's own path type does not follow a generic T.
  return v.forward<T, v.CheckIssue<T>, [string]>(v.check(requirement, said.allowed), [key] as never);
}

/** The words of the rule an issue comes from, if it comes from one. */
export const wordsOfRule = (issue: v.BaseIssue<unknown>): RuleWords | undefined =>
  typeof issue.requirement === 'function' ? ruleWords.get(issue.requirement) : undefined;
