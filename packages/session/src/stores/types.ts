import type { SessionData, Store } from 'express-session';
import type { StoreName } from '../config.ts';

/** A configured store plus what clusterSession() needs beyond express-session's Store contract. */
export interface StoreHandle {
  readonly name: StoreName;
  readonly store: Store;
  /** Where the store lives, for messages (a URL without its password, a file path); undefined for a client passed in. */
  readonly address?: string;
  /** Why the store is down, when its client knows (e.g. `connect ECONNREFUSED 127.0.0.1:6379`); undefined when up. */
  lastError?(): string | undefined;
  /** False while the store is known to be unreachable (lets a request fail fast instead of waiting). */
  isUp(): boolean;
  /** Resolves once the store is up again, or after `ms`; true when it is up. */
  whenUp(ms: number): Promise<boolean>;
  /** One cheap round trip; rejects when the store does not answer. */
  ping(): Promise<void>;
  /** The live sessions whose `userKey` equals `userId`, each with its id (for listSessions / logoutEverywhere except). */
  listUser(userId: string): Promise<Array<{ sid: string; sess: SessionData }>>;
  /** Destroys every session whose `userKey` equals `userId`; resolves with how many existed. */
  destroyUser(userId: string): Promise<number>;
  /** Closes the connections and files this handle created (never a client the user passed in). */
  close(): Promise<void>;
}

/** Shared by stores without a connection state: always up. */
export const alwaysUp = { isUp: () => true, whenUp: async () => true };

/** Revoked token ids (JWT `jti`), each remembered until its token would have expired anyway. */
export interface DenyList {
  add(jti: string, expiresAtMs: number): Promise<void>;
  /** A view kept in memory answers without a promise (no timer for the request); a store lookup with one. */
  has(jti: string): Promise<boolean> | boolean;
  close(): Promise<void>;
}

export function checkJti(jti: string): void {
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) {
    throw new TypeError('jti must be a non-empty string of at most 256 characters');
  }
}
