import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * One request's store-time budget: `storeTimeout` is what the request may spend waiting on the store in total,
 * over all its steps (waiting for the client to be ready, loading the session, regenerate/destroy, saving), not
 * per step. The clock only runs while a store step is in flight: time the app's own handler spends between the
 * load and the save is not charged, so a slow handler never turns a healthy save into a 503.
 */
export class StoreBudget {
  #spent = 0;
  readonly #total: number;

  constructor(totalMs: number) {
    this.#total = totalMs;
  }

  /** Milliseconds left; 0 when spent (a step starting then fails at once). */
  remaining(): number {
    return Math.max(0, this.#total - this.#spent);
  }

  /** Charges a finished step its wall time. Overlapping steps are each charged in full (errs towards failing sooner). */
  charge(ms: number): void {
    this.#spent += Math.max(0, ms);
  }

  /** Leaves nothing: every later step of the request fails at once. */
  exhaust(): void {
    this.#spent = this.#total;
  }
}

const current = new AsyncLocalStorage<StoreBudget>();
/** Also kept on the request, for a save whose callback chain lost the async context (e.g. an event-based library). */
const kBudget = Symbol('cluster-session.budget');

/** Runs `fn` (the session middleware and, through its continuations, the rest of the request) under `budget`. */
export function runWithBudget<T>(req: object, budget: StoreBudget, fn: () => T): T {
  (req as Record<symbol, unknown>)[kBudget] = budget;
  return current.run(budget, fn);
}

/** The budget of the request a store call belongs to: the async context's, else the session's request's. */
export function budgetOf(sess?: unknown): StoreBudget | undefined {
  const fromContext = current.getStore();
  if (fromContext) return fromContext;
  // express-session's Session keeps its request as a non-enumerable `req`.
  const req = (sess as { req?: Record<symbol, unknown> } | null | undefined)?.req;
  const b = req?.[kBudget];
  return b instanceof StoreBudget ? b : undefined;
}
