import type { ResolvedConfig } from './config.ts';
import { ConfigError } from './errors.ts';
import type { ClusterSession } from './middleware.ts';

/**
 * JWT mode: the stateless `req.session` on @cluster-session/jwt. Placeholder until that package lands; its owner
 * replaces this file with the real implementation (same signature).
 */
export function createJwtMode(_config: ResolvedConfig): ClusterSession {
  throw new ConfigError(
    "mode 'jwt' (env SESSION_MODE): jwt mode is not available in this build. " +
      "Fix: use mode 'store' (SESSION_MODE=store) with store 'sqlite', 'redis' or 'mongo'.",
  );
}
