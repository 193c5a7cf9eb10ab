/**
 * Store calls in flight and when each must have answered, checked by one interval instead of one timer per call:
 * a request's store steps are the session's hot path, and arming and clearing a timer for each cost more than the
 * rest of the guard (CPU profile of GET /whoami on Redis). A deadline fires at most `everyMs` late; the interval
 * runs only while something is pending, and never keeps the process alive.
 */
export class Deadlines {
  readonly #pending = new Set<Deadline>();
  readonly #everyMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(everyMs: number) {
    this.#everyMs = everyMs;
  }

  /** `fire` runs once `at` (ms since epoch) has passed, unless cancelled first. */
  add(at: number, fire: () => void): Deadline {
    const d: Deadline = { at, fire };
    this.#pending.add(d);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#check(), this.#everyMs);
      this.#timer.unref();
    }
    return d;
  }

  cancel(d: Deadline): void {
    this.#pending.delete(d);
    if (this.#pending.size === 0) this.#stop();
  }

  #check(): void {
    const now = Date.now();
    for (const d of this.#pending) {
      if (d.at > now) continue;
      this.#pending.delete(d);
      d.fire();
    }
    if (this.#pending.size === 0) this.#stop();
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

interface Deadline {
  readonly at: number;
  readonly fire: () => void;
}
