import { createHash } from 'node:crypto';
import { isIPv6 } from 'node:net';
import type { Request, RequestHandler } from 'express';
import { parseOptions, rule, words, type OptionMeta } from '@cluster-session/core';
import * as v from 'valibot';
import type { Env } from './config.ts';
import { ConfigError, LoginThrottledError } from './errors.ts';
import { closeWith, configOf } from './resolved.ts';
import { createCounterStore, type CounterStore } from './throttle-store.ts';
import type { ClusterSession } from './types.ts';

const int = (min: number, max: number, said: OptionMeta) => v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max), words(said));

const schema = v.pipe(
  v.strictObject({
    /** Failed logins of one account (from any address) before it is locked. */
    maxFailures: v.optional(int(1, 10_000, { env: 'LOGIN_MAX_FAILURES', envType: 'int', allowed: 'a whole number from 1 to 10000', example: '5' }), 5),
    /** Failed logins from one address (any account) before the address is locked. */
    maxFailuresPerAddress: v.optional(
      int(1, 1_000_000, { env: 'LOGIN_MAX_FAILURES_PER_ADDRESS', envType: 'int', allowed: 'a whole number from 1 to 1000000', example: '100' }),
      100,
    ),
    /** How long failures are remembered (from the first of a series), unless a success clears the account's. */
    windowSeconds: v.optional(
      int(1, 31 * 86_400, { env: 'LOGIN_FAILURE_WINDOW_SECONDS', envType: 'int', allowed: 'a whole number of seconds from 1 to 2678400 (31 days)', example: '86400' }),
      86_400,
    ),
    /** The first lock; each further failure doubles it. */
    blockSeconds: v.optional(int(1, 86_400, { env: 'LOGIN_BLOCK_SECONDS', envType: 'int', allowed: 'a whole number of seconds from 1 to 86400', example: '30' }), 30),
    /** The longest lock. */
    maxBlockSeconds: v.optional(
      int(1, 31 * 86_400, { env: 'LOGIN_MAX_BLOCK_SECONDS', envType: 'int', allowed: 'a whole number of seconds from 1 to 2678400 (31 days)', example: '3600' }),
      3600,
    ),
  }),
  rule('maxBlockSeconds', { allowed: 'at least blockSeconds', fix: 'raise maxBlockSeconds (LOGIN_MAX_BLOCK_SECONDS) or lower blockSeconds (LOGIN_BLOCK_SECONDS)' }, (o) => o.maxBlockSeconds >= o.blockSeconds),
);

export type LoginThrottleOptions = v.InferInput<typeof schema>;
export type ResolvedLoginThrottleOptions = Readonly<v.InferOutput<typeof schema>>;

/** One login attempt that check() let through: report how the password check went. */
export interface LoginAttempt {
  /** Counts a failure for the account and the address; a count at the limit locks them (doubling each time). */
  failed(): Promise<void>;
  /** Clears the account's failures and lock. The address's failures stay (see README: a known good login must not buy guesses). */
  succeeded(): Promise<void>;
}

export interface LoginThrottle {
  readonly options: ResolvedLoginThrottleOptions;
  /**
   * Refuses the attempt with LoginThrottledError (429, Retry-After) while the account or the request's address
   * is locked, before any password work; otherwise returns the attempt to report on.
   */
  check(req: Request, account: string): Promise<LoginAttempt>;
  /** Express middleware: check() with `accountOf(req)`, the attempt at `res.locals.loginAttempt`. */
  guard(accountOf: (req: Request) => unknown): RequestHandler;
  /** Unlocks an account (support desk, admin action): clears its failures and lock. */
  reset(account: string): Promise<void>;
  /** Closes the clients and files the throttle opened (sessions.close() does too). */
  close(): Promise<void>;
}

/**
 * The counter key of an account: a hash, so neither a username nor its length reaches the store's key space, and
 * case/Unicode variants of one name ("Alice", "alice", "ａｌｉｃｅ") share one count.
 */
const accountKey = (account: string) => 'a:' + createHash('sha256').update(account.normalize('NFKC').trim().toLowerCase()).digest('base64url').slice(0, 22);

/** The counter key of an address. An IPv6 client usually holds a whole /64: counted as one. */
function addressKey(ip: string | undefined): string {
  const addr = (ip ?? 'unknown').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
  if (!isIPv6(addr)) return 'ip:' + addr;
  const [head = '', tail = ''] = addr.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return 'ip6:' + groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':') + '::/64';
}

/** The lock after a failure that brought a count to `n` of `max`: blockSeconds, doubled per failure since, capped. */
const lockSeconds = (n: number, max: number, o: ResolvedLoginThrottleOptions) =>
  n < max ? 0 : Math.min(o.maxBlockSeconds, o.blockSeconds * 2 ** Math.min(n - max, 40));

/**
 * A login throttle on the store of `sessions`: failed attempts are counted per account and per client address in
 * the shared store (Redis, MongoDB, SQLite; memory: this process only), so the limit holds across every worker
 * and instance. After `maxFailures` failures an account is locked for `blockSeconds`, each further failure
 * doubling the lock up to `maxBlockSeconds`; likewise an address after `maxFailuresPerAddress`. A locked attempt
 * gets 429 with Retry-After before the password is checked (no hashing work for a guesser). Options fall back
 * to LOGIN_MAX_FAILURES, LOGIN_MAX_FAILURES_PER_ADDRESS, LOGIN_FAILURE_WINDOW_SECONDS, LOGIN_BLOCK_SECONDS,
 * LOGIN_MAX_BLOCK_SECONDS.
 */
export function loginThrottle(sessions: ClusterSession, input: LoginThrottleOptions = {}, env: Env = process.env): LoginThrottle {
  const config = configOf(sessions, 'loginThrottle');
  const o = parseOptions(schema, input, { where: 'loginThrottle', error: ConfigError }, { env }) as ResolvedLoginThrottleOptions;
  if (config.store.type === 'memory' && config.workers > 1) {
    config.logger.warn(`cluster-session: loginThrottle on store 'memory' counts per process: with ${config.workers} workers a guesser gets up to ${config.workers}× the attempts. Use a shared store (sqlite, redis, mongo).`);
  }
  const counters: CounterStore = createCounterStore(config, `${config.collection}_throttle`);
  let closed: Promise<void> | undefined;
  const close = () => (closed ??= counters.close());
  closeWith(sessions, close);
  const lockSpan = o.maxBlockSeconds;
  const byAccount = counters.make({ keyPrefix: 'login-fail', points: o.maxFailures, durationSeconds: o.windowSeconds });
  const byAddress = counters.make({ keyPrefix: 'login-fail', points: o.maxFailuresPerAddress, durationSeconds: o.windowSeconds });
  // `block()` writes points+1 with the lock's own expiry; `get()` then reads it back with msBeforeNext.
  const locks = counters.make({ keyPrefix: 'login-lock', points: 1, durationSeconds: lockSpan });

  const lockedFor = async (key: string): Promise<number> => {
    const res = await counters.run('lock read', () => locks.get(key));
    return res && res.consumedPoints > 1 && res.msBeforeNext > 0 ? res.msBeforeNext : 0;
  };

  const fail = async (key: string, limiter: typeof byAccount, max: number) => {
    const res = await counters.run('count', () => limiter.penalty(key, 1));
    const seconds = lockSeconds(res.consumedPoints, max, o);
    if (seconds > 0) await counters.run('lock', () => locks.block(key, seconds));
  };

  const clear = async (key: string) => {
    await counters.run('reset', () => Promise.all([byAccount.delete(key), locks.delete(key)]));
  };

  const check = async (req: Request, account: string): Promise<LoginAttempt> => {
    if (typeof account !== 'string' || account === '') throw new TypeError('loginThrottle: check(req, account) needs the account name as a non-empty string');
    const acct = accountKey(account);
    const addr = addressKey(req.ip ?? req.socket?.remoteAddress);
    const [a, i] = await Promise.all([lockedFor(acct), lockedFor(addr)]);
    const wait = Math.max(a, i);
    if (wait > 0) throw new LoginThrottledError(a >= i ? 'account' : 'address', Math.ceil(wait / 1000));
    let reported = false;
    const once = () => {
      if (reported) throw new TypeError('loginThrottle: an attempt is reported once, as failed() or succeeded()');
      reported = true;
    };
    return {
      async failed() {
        once();
        await Promise.all([fail(acct, byAccount, o.maxFailures), fail(addr, byAddress, o.maxFailuresPerAddress)]);
      },
      async succeeded() {
        once();
        await clear(acct);
      },
    };
  };

  return {
    options: o,
    check,
    guard: (accountOf) => (req, res, next) => {
      const account = accountOf(req);
      // No account in the request: the route answers the bad request itself; nothing to count.
      if (typeof account !== 'string' || account === '') return next();
      check(req, account).then((attempt) => {
        res.locals.loginAttempt = attempt;
        next();
      }, next);
    },
    reset: (account) => clear(accountKey(account)),
    close,
  };
}
