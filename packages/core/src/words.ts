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

/** What a rule between options (a refinement) says in place of the option's own words. */
export interface RuleWords {
  allowed: string;
  fix?: string;
}
