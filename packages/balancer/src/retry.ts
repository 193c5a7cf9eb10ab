/**
 * The retry and ejection policy, as pure functions of what happened: no sockets, no clocks, no state. The
 * exchange (client.ts) gathers the facts and carries the decisions out; the tables in test/retry.test.ts pin
 * every case down.
 */
import { ProxyCodes } from './errors.ts';

/** What one attempt's instance connection reported when it failed before the answer was complete. */
export interface Failure {
  /** The connection was established (else nothing was sent: any request may go elsewhere). */
  connected: boolean;
  /** Bytes of the answer received (0: the instance may never have seen the request). */
  received: number;
  /** Taken from an idle pool (it served an earlier exchange). */
  reused: boolean;
  timedOut: boolean;
  /** The instance answered with bytes that are not valid HTTP/1.1. */
  invalid: boolean;
}

/** Where the request stands. */
export interface Attempt {
  /** Some of the answer (interim or final) already reached the client. */
  started: boolean;
  /** Idempotent method without a body: may be sent again after it reached an instance. */
  replayable: boolean;
  /** Extra attempts made so far (the stale-connection retry is not one). */
  attempt: number;
  /** This request already had its one retry on a fresh connection after a stale pooled one. */
  freshOnly: boolean;
  /** Extra attempts allowed (`retries`). */
  retries: number;
}

export const NEXT_ABORT = 0; // cut the client connection: part of an answer is out, nothing else is honest
export const NEXT_FRESH = 1; // once more on a fresh connection, same instance allowed, not counted as an attempt
export const NEXT_OTHER = 2; // another attempt, on an instance not tried yet
export const NEXT_ANSWER = 3; // answer the client with `status`

interface FailureDecision {
  next: number;
  /** 502, or 504 after a timeout: what the client gets if no attempt is left. */
  status: number;
  /** The failure says something about the instance (counts toward passive ejection). */
  counts: boolean;
  /** A pooled connection went stale under the request: the connection, not the instance, is to blame. */
  stale: boolean;
}

/**
 * A pooled connection that fails before any answer byte (reset, EPIPE, close) most likely went stale: the
 * instance (or the worker holding it) closed it as we reused it. That says nothing about the instance, so it does
 * not count toward ejection, and the request gets one more try on a fresh connection. A timeout does count. Never
 * connected: nothing was sent, any method may go elsewhere; sent: only replayable requests, and only while no
 * answer byte came back.
 */
export function onFailure(f: Failure, a: Attempt): FailureDecision {
  const stale = f.reused && f.received === 0 && !f.timedOut;
  const status = f.timedOut ? 504 : 502;
  const counts = !stale;
  if (a.started) return { next: NEXT_ABORT, status, counts, stale };
  const safe = !f.connected || (a.replayable && f.received === 0);
  if (safe && stale && !a.freshOnly) return { next: NEXT_FRESH, status, counts, stale };
  if (safe && a.attempt < a.retries) return { next: NEXT_OTHER, status, counts, stale };
  return { next: NEXT_ANSWER, status, counts, stale };
}

/**
 * An instance answered `status` and nothing of it reached the client yet: send the request elsewhere instead
 * (nginx proxy_next_upstream http_502..., HAProxy retry-on) when the status is one to retry on, the request can be
 * replayed, an attempt remains and some other instance could take it (asked last: it scans the instances).
 */
export function retryAnswer(status: number, retryOn: ReadonlySet<number>, a: Attempt, otherInstance: () => boolean): boolean {
  return retryOn.has(status) && !a.started && a.replayable && a.attempt < a.retries && otherInstance();
}

export const ANSWER_NEUTRAL = 0;
export const ANSWER_FAILURE = 1; // counts toward passive ejection
export const ANSWER_RECOVERY = 2; // ends a passive ejection at once

/**
 * What an instance's own answer says about it: 502/503/504 mean it cannot serve (overloaded, its own upstream
 * down); any other 5xx is the application's (one buggy route must not eject every instance); anything below 500
 * is a good answer, which brings back an instance that was tried as a last resort while ejected.
 */
export function answerVerdict(status: number): number {
  if (status >= 502 && status <= 504) return ANSWER_FAILURE;
  return status < 500 ? ANSWER_RECOVERY : ANSWER_NEUTRAL;
}

/** The balancer's own answer when no attempt is left: status, code and reason, for the client. */
export function failureAnswer(status: number, invalid: boolean): { status: number; code: string; reason: string } {
  if (status === 504) return { status, code: ProxyCodes.gatewayTimeout, reason: 'the instance did not answer in time' };
  return { status: 502, code: ProxyCodes.badGateway, reason: invalid ? 'the instance sent an invalid response' : 'the instance failed before answering' };
}
