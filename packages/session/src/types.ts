import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Store } from 'express-session';
import type { SessionConfigView } from './config.ts';

/** The contract both modes implement (modes/store.ts, modes/jwt.ts). */

export interface SessionHealth {
  ok: boolean;
  mode: 'store' | 'jwt';
  store: string;
  error?: string;
}

/** The middleware clusterSession() returns: mount it with app.use(); the extras serve health checks and shutdown. */
export interface ClusterSession extends RequestHandler {
  /** The configuration in use, frozen, without secrets, keys or store passwords. */
  readonly config: SessionConfigView;
  /** The express-session Store (store mode). */
  readonly store: Store | undefined;
  /** One store round trip, bounded by storeTimeout. Never rejects. */
  health(): Promise<SessionHealth>;
  /** Closes the clients and files clusterSession created (never a client you passed in). */
  close(): Promise<void>;
  /** Express error middleware answering this package's errors (from login()/logout() in routes) as JSON. */
  readonly errorHandler: ErrorRequestHandler;
  /** Destroys every session of one user; see logoutEverywhere(). */
  destroyUser(userId: string): Promise<number>;
}
