import type { z } from 'zod';
import { ConfigError } from './errors.ts';
import type { SessionConfigInput } from './config.ts';

// Where configuration comes from (the object, then the environment) and how a wrong value is reported.

export type Env = Record<string, string | undefined>;

/**
 * Per option: its env variable, what is allowed (`envAllowed` when the env variable takes less than the option,
 * e.g. only store names), and an example of a value that works, in the form the user would write it.
 */
const KEYS: Record<string, { env?: string; allowed: string; envAllowed?: string; example?: string; envExample?: string; unset?: string; secret?: boolean }> = {
  mode: { env: 'SESSION_MODE', allowed: "'store' or 'jwt'", example: "mode: 'jwt'", envExample: 'SESSION_MODE=jwt' },
  store: {
    env: 'SESSION_STORE',
    allowed: "'redis', 'mongo', 'sqlite', 'memory' or { type: ... } with url/client/path",
    envAllowed: "one of 'redis', 'mongo', 'sqlite', 'memory'",
    example: "store: 'sqlite'",
    envExample: 'SESSION_STORE=sqlite',
  },
  secret: {
    env: 'SESSION_SECRET',
    allowed: 'a string of at least 16 characters or a non-empty list of them',
    envAllowed: 'at least 16 characters (a comma-separated list rotates: each one that long)',
    unset: 'or unset it outside production (a random secret per process)',
    example: 'secret: process.env.SESSION_SECRET',
    envExample: 'SESSION_SECRET="$(openssl rand -base64 48)"',
    secret: true,
  },
  ttl: { env: 'SESSION_TTL', allowed: 'a whole number of seconds, at least 1', example: 'ttl: 86400', envExample: 'SESSION_TTL=86400' },
  cookie: { allowed: '{ name, secure: true|false|"auto", sameSite: "lax"|"strict"|"none", httpOnly, domain, path }', example: "cookie: { sameSite: 'lax' }" },
  trustProxy: { allowed: 'true or false' },
  rolling: { allowed: 'true or false' },
  touchAfter: { allowed: 'a whole number of seconds, 0 or more', example: 'touchAfter: 60' },
  maxSessionBytes: { allowed: 'a whole number of bytes between 256 and 16 MiB', example: 'maxSessionBytes: 65536' },
  storeTimeout: { allowed: 'milliseconds between 50 and 60000', example: 'storeTimeout: 1000' },
  userKey: { allowed: 'a non-empty string', example: "userKey: 'user'" },
  prefix: { allowed: 'a string without spaces', example: "prefix: 'sess:'" },
  collection: { allowed: 'letters, digits and _ (starting with a letter or _)', example: "collection: 'sessions'" },
  workers: { env: 'CLUSTER_SESSION_WORKERS', allowed: 'a whole number, at least 1' },
  sticky: { env: 'CLUSTER_SESSION_STICKY', allowed: "true/false ('1' or '0' in the env)" },
  jwt: { env: 'JWT_SECRET / JWT_KEYS', allowed: 'an options object for @cluster-session/jwt', secret: true },
  logger: { allowed: 'an object with warn() and error()' },
};

export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function envInt(env: Env, name: string, key: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw.trim())) {
    throw new ConfigError(`${key} (env ${name}) is ${JSON.stringify(raw)}: expected ${KEYS[key]!.allowed}. Fix: set ${name} to a number like 86400, or unset it.`);
  }
  return Number(raw);
}

/** Builds the input the schema sees: the object's values win, env variables fill what it leaves out. */
export function mergeEnv(input: SessionConfigInput, env: Env): { merged: Record<string, unknown>; fromEnv: Set<string> } {
  const merged: Record<string, unknown> = { ...input };
  const fromEnv = new Set<string>();
  const take = (key: string, value: unknown) => {
    if (merged[key] === undefined && value !== undefined && value !== '') {
      merged[key] = value;
      fromEnv.add(key);
    }
  };
  take('mode', env.SESSION_MODE);
  take('store', env.SESSION_STORE);
  if (env.SESSION_SECRET) {
    take('secret', env.SESSION_SECRET.split(',').map((s) => s.trim()).filter(Boolean));
  }
  take('ttl', envInt(env, 'SESSION_TTL', 'ttl'));
  take('workers', envInt(env, 'CLUSTER_SESSION_WORKERS', 'workers'));
  if (env.CLUSTER_SESSION_STICKY !== undefined && env.CLUSTER_SESSION_STICKY !== '') {
    const raw = env.CLUSTER_SESSION_STICKY;
    if (!['0', '1', 'true', 'false'].includes(raw)) {
      throw new ConfigError(`sticky (env CLUSTER_SESSION_STICKY) is ${JSON.stringify(raw)}: expected '1' or '0'. Fix: let the cluster set it, or unset it.`);
    }
    take('sticky', raw === '1' || raw === 'true');
  }
  return { merged, fromEnv };
}

/**
 * One line per wrong value: where it came from (the env variable the user set, or the option), the value (never a
 * secret's), what is allowed and a fix with an example. No schema-library wording and no cause: the message is
 * what a person reads, printed once by whoever starts the app.
 */
export function toConfigError(error: z.ZodError, merged: Record<string, unknown>, fromEnv: Set<string>): ConfigError {
  const known = Object.keys(KEYS).join(', ');
  const lines = error.issues.map((issue) => {
    if (issue.path.length === 0 && issue.code === 'unrecognized_keys') {
      return `unknown option(s) ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}. Fix: remove or correct them; known options are ${known}.`;
    }
    const key = String(issue.path[0] ?? '(root)');
    const meta = KEYS[key];
    if (!meta) return `unknown option ${JSON.stringify(key)}. Fix: remove it; known options are ${known}.`;
    let value: unknown = merged[key];
    for (const p of issue.path.slice(1)) value = (value as Record<PropertyKey, unknown> | undefined)?.[p as PropertyKey];
    const shown = meta.secret ? '[redacted]' : show(value);
    const where = issue.path.join('.');
    if (issue.code === 'unrecognized_keys') {
      return `${where} has unknown key(s) ${issue.keys.join(', ')}: expected ${meta.allowed}. Fix: remove them${meta.example ? `, e.g. ${meta.example}` : ''}.`;
    }
    if (meta.env && fromEnv.has(key)) {
      const allowed = meta.envAllowed ?? meta.allowed;
      const example = meta.envExample ? ` (e.g. ${meta.envExample})` : '';
      return `${meta.env} is ${shown}: expected ${allowed}. Fix: set ${meta.env} to ${allowed}${example}, ${meta.unset ?? 'or unset it for the default'}.`;
    }
    const source = issue.path.length > 1 || !meta.env ? '' : ` (or env ${meta.env})`;
    // Our own refinements (e.g. "a URL starting with redis://") say more about a nested value than the option's shape.
    const expected = issue.code === 'custom' ? issue.message : meta.allowed;
    return `${where}${source} is ${shown}: expected ${expected}. Fix: change ${where}${meta.example ? `, e.g. ${meta.example}` : ''}.`;
  });
  return new ConfigError(lines.length === 1 ? `clusterSession: ${lines[0]}` : `clusterSession: invalid configuration:\n  - ${lines.join('\n  - ')}`);
}
