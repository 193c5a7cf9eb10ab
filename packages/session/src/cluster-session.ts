import { resolveConfig, type Env, type SessionConfigInput } from './config.ts';
import { createJwtMode } from './modes/jwt.ts';
import { createStoreMode } from './modes/store.ts';
import { attachConfig } from './resolved.ts';
import type { ClusterSession } from './types.ts';

let warnedGeneratedSecret = false;

/**
 * Express middleware giving `req.session`, backed by the configured store or by JWT, from `config` merged over
 * the environment. Throws ConfigError at once for a wrong value.
 */
export function clusterSession(input?: SessionConfigInput, env: Env = process.env): ClusterSession {
  const config = resolveConfig(input, env);
  if (config.secretGenerated && !warnedGeneratedSecret) {
    warnedGeneratedSecret = true;
    config.logger.warn(
      'cluster-session: no SESSION_SECRET set; using a random secret for this process. Sessions will not survive a ' +
        'restart nor verify on other processes. Set SESSION_SECRET (required when NODE_ENV=production).',
    );
  }
  return attachConfig(config.mode === 'jwt' ? createJwtMode(config) : createStoreMode(config), config);
}
