import type http from 'node:http';
import type net from 'node:net';
import { readWorkerEnv, type WorkerEnv } from '@cluster-session/core';
import type { ToPrimary } from './protocol.ts';

/** The worker side's state and its view of the primary's contract, shared by worker.ts and worker-retire.ts. */

export interface Conn {
  inFlight: number;
  idleSince: number;
  /** socket.bytesRead when the last response ended: more since then means the parser holds part of a request. */
  readAtIdle: number;
  /** The sticky key the primary dealt this connection by (a moved connection goes back to its owner). */
  key: string | undefined;
  /** Given back to the primary, awaiting its answer. */
  moving: boolean;
  /** Never moved (pipelining client, declined move): retirement closes it as without moving. */
  stay: boolean;
  /** The newest request's answer: the one that says `Connection: close` when the connection must end. */
  last: http.ServerResponse | undefined;
}

interface WorkerState {
  installed: boolean;
  readySent: boolean;
  retiring: boolean;
  /** Retiring with another worker ready: keep-alive connections are given back to the primary, not closed. */
  moving: boolean;
  retiredAt: number;
  drainedSent: boolean;
  servers: Set<net.Server>;
  target: net.Server | undefined;
  /** The app closed its PORT server: connections still arriving are declined, so the primary re-deals them. */
  targetClosed: boolean;
  sockets: Map<net.Socket, Conn>;
  requests: number;
}

// One state per process even if the app resolves this package through another path (dist vs src) than the preload.
const KEY = Symbol.for('cluster-session.worker');
const g = globalThis as unknown as Record<symbol, WorkerState | undefined>;
export const st: WorkerState = (g[KEY] ??= {
  installed: false,
  readySent: false,
  retiring: false,
  moving: false,
  retiredAt: 0,
  drainedSent: false,
  servers: new Set(),
  target: undefined,
  targetClosed: false,
  sockets: new Map(),
  requests: 0,
});

/** What the primary told this worker (core's worker environment contract); undefined outside a cluster. */
export const contract = (): WorkerEnv | undefined => (typeof process.send === 'function' ? readWorkerEnv(process.env) : undefined);
export const managed = (): boolean => contract() !== undefined;
export const stickyMode = (): boolean => contract()?.sticky === true;
export const waitReady = (): boolean => contract()?.waitReady === true;
export const roundRobin = (): boolean => !stickyMode() && contract()?.policy === 'rr';

export function send(msg: ToPrimary): void {
  if (process.connected) process.send!(msg, undefined, {}, () => {});
}

