/**
 * Store calls in flight and when each must have answered, checked by one interval instead of one timer per call:
 * a request's store steps are the session's hot path, and arming and clearing a timer for each cost more than the
 * rest of the guard (CPU profile of GET /whoami on Redis). A deadline fires at most `everyMs` late; the interval
 * runs only while something is pending, and never keeps the process alive.
 *
 * Pending deadlines sit in a plain array, swept by the interval; a cancelled one lets go of its callback at once.
 * The first version kept them in a Set, and that cost the store mode a fifth of its CPU in the garbage collector:
 * a Set that grows and shrinks is rehashed into a new table again and again, and V8 links each old table to the
 * next one and leaves its entries in it. Once one of those tables had been promoted, the dead chain kept every
 * later request's callback (and through it the request, its session and its response) alive through two young
 * collections, so they were copied twice and promoted: 10 MB promoted per scavenge and 25-35 ms pauses at ~10k
 * req/s, against nothing promoted without it (`--trace-gc-nvp` of bench/fixtures/session-app.ts on the memory store).
 */
export class Deadlines {
  #pending: Deadline[] = [];
  /** Added and neither fired nor cancelled yet. */
  #live = 0;
  readonly #everyMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(everyMs: number) {
    this.#everyMs = everyMs;
  }

  /** `fire` runs once `at` (ms since epoch) has passed, unless cancelled first. */
  add(at: number, fire: () => void): Deadline {
    const d: Deadline = { at, fire };
    this.#pending.push(d);
    this.#live++;
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#check(), this.#everyMs);
      this.#timer.unref();
    }
    return d;
  }

  /** Idempotent; a deadline that already fired is left as it is. */
  cancel(d: Deadline): void {
    if (d.fire === undefined) return;
    d.fire = undefined;
    if (--this.#live === 0) this.#stop();
  }

  #check(): void {
    const now = Date.now();
    // A callback may add or cancel deadlines: the sweep walks a list of its own, and what it keeps goes back on
    // top of whatever was added meanwhile.
    const list = this.#pending;
    this.#pending = [];
    for (const d of list) {
      const fire = d.fire;
      if (fire === undefined) continue;
      if (d.at > now) {
        this.#pending.push(d);
        continue;
      }
      d.fire = undefined;
      this.#live--;
      fire();
    }
    if (this.#live === 0) this.#stop();
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#pending = [];
  }
}

interface Deadline {
  readonly at: number;
  /** Until it fires or is cancelled. */
  fire: (() => void) | undefined;
}
