import { resolveConfig, type Env, type ResolvedConfig, type SessionConfigInput } from './config.ts';
import { createJwtMode } from './modes/jwt.ts';

/**
 * Validates a configuration once, where it enters: a cluster primary or a launcher like the example's
 * `npm start`, before any worker is forked. Throws the ConfigError each worker's clusterSession() would throw, so it
 * can be printed once. Opens no store and connects nowhere: JWT options are checked by building the token
 * middleware over an in-process deny list, which is then dropped.
 */
export function checkConfig(input: SessionConfigInput = {}, env: Env = process.env, cwd = process.cwd()): ResolvedConfig {
  const config = resolveConfig(input, env, cwd);
  if (config.mode === 'jwt') void createJwtMode({ ...config, store: { type: 'memory' }, workers: 1 }).close();
  return config;
}
