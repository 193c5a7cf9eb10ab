import type { Store } from 'express-session';
import type { StoreName } from '../config.ts';

/** A configured store plus what clusterSession() needs beyond express-session's Store contract. */
export interface StoreHandle {
  readonly name: StoreName;
  readonly store: Store;
  /** False while the store is known to be unreachable (lets a request fail fast instead of waiting). */
  isUp(): boolean;
  /** Resolves once the store is up again, or after `ms`; true when it is up. */
  whenUp(ms: number): Promise<boolean>;
  /** One cheap round trip; rejects when the store does not answer. */
  ping(): Promise<void>;
  /** Destroys every session whose `userKey` equals `userId`; resolves with how many existed. */
  destroyUser(userId: string): Promise<number>;
  /** Closes the connections and files this handle created (never a client the user passed in). */
  close(): Promise<void>;
}

/** Shared by stores without a connection state: always up. */
export const alwaysUp = { isUp: () => true, whenUp: async () => true };
