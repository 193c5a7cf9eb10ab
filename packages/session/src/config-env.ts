import type { z } from 'zod';
import { ConfigError } from './errors.ts';
import type { SessionConfigInput } from './config.ts';

// Where configuration comes from (the object, then the environment) and how a wrong value is reported.

export type Env = Record<string, string | undefined>;

/** Per option: its env variable and the sentence used when its value is wrong. */
const KEYS: Record<string, { env?: string; allowed: string; secret?: boolean }> = {
  mode: { env: 'SESSION_MODE', allowed: "'store' or 'jwt'" },
  store: { env: 'SESSION_STORE', allowed: "'redis', 'mongo', 'sqlite', 'memory' or { type: ... } with url/client/path" },
  secret: { env: 'SESSION_SECRET', allowed: 'a string of at least 16 characters or a non-empty list of them', secret: true },
  ttl: { env: 'SESSION_TTL', allowed: 'a whole number of seconds, at least 1' },
  cookie: { allowed: '{ name, secure: true|false|"auto", sameSite: "lax"|"strict"|"none", httpOnly, domain, path }' },
  trustProxy: { allowed: 'true or false' },
  rolling: { allowed: 'true or false' },
  touchAfter: { allowed: 'a whole number of seconds, 0 or more' },
  maxSessionBytes: { allowed: 'a whole number of bytes between 256 and 16 MiB' },
  storeTimeout: { allowed: 'milliseconds between 50 and 60000' },
  userKey: { allowed: 'a non-empty string' },
  prefix: { allowed: 'a string without spaces' },
  collection: { allowed: 'letters, digits and _ (starting with a letter or _)' },
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

export function toConfigError(error: z.ZodError, merged: Record<string, unknown>, fromEnv: Set<string>): ConfigError {
  const lines = error.issues.map((issue) => {
    if (issue.path.length === 0 && issue.code === 'unrecognized_keys') {
      return `unknown option(s) ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}. Fix: remove or correct them; known options are ${Object.keys(KEYS).join(', ')}.`;
    }
    const key = String(issue.path[0] ?? '(root)');
    const meta = KEYS[key];
    if (!meta) {
      return `unknown option ${JSON.stringify(key)}. Fix: remove it; known options are ${Object.keys(KEYS).join(', ')}.`;
    }
    const where = issue.path.length > 1 ? `${issue.path.join('.')}` : key;
    const source = issue.path.length > 1 || !meta.env ? '' : fromEnv.has(key) ? ` (env ${meta.env})` : ` (or env ${meta.env})`;
    let value: unknown = merged[key];
    for (const p of issue.path.slice(1)) value = (value as Record<PropertyKey, unknown> | undefined)?.[p as PropertyKey];
    const shown = meta.secret ? '[redacted]' : show(value);
    const detail = issue.code === 'unrecognized_keys' ? `unknown key(s) ${issue.keys.join(', ')}` : issue.message;
    return `${where}${source} is ${shown} (${detail}): expected ${meta.allowed}. Fix: correct ${meta.env && fromEnv.has(key) ? meta.env : where}.`;
  });
  return new ConfigError(`clusterSession: invalid configuration:\n  - ${lines.join('\n  - ')}`, { cause: error });
}
