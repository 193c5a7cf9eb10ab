/**
 * The per-client limits shared by the balancer's worker threads (nginx shares limit_conn/limit_req in a memory
 * zone across workers): with N threads on one port, a count or bucket per thread would let a client have N times
 * its limit. Each table is a SharedArrayBuffer made by the main thread, handed to every thread and used with
 * Atomics; a thread is given its own view by the constructor.
 *
 * Layout: the slots are split in stripes of STRIPE slots, each with an Int32 lock; an address hashes to one stripe
 * and is looked up, inserted and updated under that one lock (critical sections of a few dozen loads and stores,
 * no allocation, no calls out). An address is keyed by a 64-bit hash (two 32-bit hashes seeded by a random seed in
 * the buffer's header, so every thread hashes alike and an outsider cannot aim addresses at one stripe); two
 * addresses with the same 64-bit hash share a limit, which is negligible. Memory is fixed when the buffer is made.
 */
const STRIPE = 16;
const HEADER = 4; // Int32s: seed a, seed b, stripes, threads (conn) / next lock owner id (rate)
const SPINS = 256;
/** Stripes one sweep() of the rate table visits (4,096 slots, well under a millisecond). */
const SWEEP_STRIPES = 256;
/** A lock held this long by one unchanged owner is taken over: its holder died inside the critical section. */
const STALE_MS = 1000;

let waitable = true;

/** Takes lock `i` with `tag` (nonzero, different per acquisition): spins, then sleeps 1 ms at a time. */
function acquire(words: Int32Array, i: number, tag: number): void {
  let seen = 0;
  let since = 0;
  for (let n = 0; ; n++) {
    const held = Atomics.compareExchange(words, i, 0, tag);
    if (held === 0) return;
    if (n < SPINS) continue;
    if (held !== seen) {
      seen = held;
      since = Date.now();
    } else if (Date.now() - since > STALE_MS && Atomics.compareExchange(words, i, held, tag) === held) return;
    // Worker threads may block; where Atomics.wait throws (a main thread elsewhere than Node) this spins instead.
    // No notify on release: it would cost every release a call into the runtime, and a waiter is only here when
    // its holder was descheduled, so waking within 1 ms is soon enough.
    if (waitable) {
      try {
        Atomics.wait(words, i, held, 1);
      } catch {
        waitable = false;
      }
    }
  }
}

/** Releases lock `i` only if it is still ours (not taken over as stale). */
function release(words: Int32Array, i: number, tag: number): void {
  Atomics.compareExchange(words, i, tag, 0);
}

let h1 = 0;
let h2 = 0;

/** Sets h1, h2 to two independent seeded 32-bit hashes of `s` (never both 0: 0,0 marks an empty slot). */
function hash(s: string, seedA: number, seedB: number): void {
  let a = seedA;
  let b = seedB;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193); // FNV-1a
    b = (Math.imul(((b << 5) | (b >>> 27)) ^ c, 0x9e3779b1) + seedA) | 0; // rotate, xor, multiply
  }
  h1 = fmix(a ^ s.length);
  h2 = fmix(b ^ seedA);
  if ((h1 | h2) === 0) h2 = 1;
}

/** MurmurHash3's finalizer: every input bit moves every output bit. */
function fmix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Hashes `key` (into h1, h2) and takes the lock of its stripe with `tag`; returns the stripe. */
function enter(words: Int32Array, stripes: number, key: string, tag: number): number {
  hash(key, words[0]!, words[1]!);
  const stripe = (h1 >>> 0) % stripes;
  acquire(words, HEADER + stripe, tag);
  return stripe;
}

function stripesFor(slots: number): number {
  return Math.max(1, Math.ceil(slots / STRIPE));
}

function seed(words: Int32Array): void {
  const r = crypto.getRandomValues(new Int32Array(2)); // not into the shared view: Web Crypto refuses shared memory
  words[0] = r[0]!;
  words[1] = r[1]!;
}

/** Open client connections per address: `open` counts this one in and returns the count, `close` undoes it. */
export interface ConnCounts {
  open(ip: string): number;
  close(ip: string): void;
}

/** One thread alone: a Map, an entry only while the address has a connection open. */
export class LocalConnCounts implements ConnCounts {
  private readonly counts = new Map<string, number>();

  open(ip: string): number {
    const open = (this.counts.get(ip) ?? 0) + 1;
    this.counts.set(ip, open);
    return open;
  }

  close(ip: string): void {
    const open = (this.counts.get(ip) ?? 0) - 1;
    if (open <= 0) this.counts.delete(ip);
    else this.counts.set(ip, open);
  }
}

/**
 * Between threads. A slot holds the key and one count per thread, the address's count being their sum: a thread
 * only changes its own count, so when a thread dies the main thread can zero its share (its connections died with
 * it) without knowing which addresses it had. A slot whose counts are all zero is free.
 */
export class SharedConnCounts implements ConnCounts {
  private readonly words: Int32Array;
  private readonly stripes: number;
  private readonly threads: number;
  private readonly thread: number;
  private readonly slots: number; // Int32 index of slot 0
  private readonly tagBase: number;
  private seq = 0;

  /** A table of at least `slots` addresses for `threads` threads. */
  static buffer(slots: number, threads: number): SharedArrayBuffer {
    const stripes = stripesFor(slots);
    const buffer = new SharedArrayBuffer((HEADER + stripes + stripes * STRIPE * (2 + threads)) * 4);
    const words = new Int32Array(buffer);
    seed(words);
    words[2] = stripes;
    words[3] = threads;
    return buffer;
  }

  constructor(buffer: SharedArrayBuffer, thread: number, threads: number) {
    this.words = new Int32Array(buffer);
    this.stripes = this.words[2]!;
    if (this.words[3] !== threads || !(thread >= 0 && thread < threads)) throw new RangeError(`thread ${thread} of ${threads} does not fit a table made for ${this.words[3]} threads`);
    this.threads = threads;
    this.thread = thread;
    this.slots = HEADER + this.stripes;
    this.tagBase = (thread + 1) << 16; // clearThread knows a dead thread's locks by this
  }

  /**
   * Run by the main thread when worker thread `thread` has exited, before a thread takes its place: its counts go
   * to zero (its connections died with it) and a lock it died holding is freed.
   */
  static clearThread(buffer: SharedArrayBuffer, thread: number, threads: number): void {
    const words = new Int32Array(buffer);
    const stride = 2 + threads;
    const mine = (threads + 1) << 16; // an owner no worker thread uses
    for (let stripe = 0; stripe < words[2]!; stripe++) {
      const lock = HEADER + stripe;
      const held = Atomics.load(words, lock);
      if (held >>> 16 === thread + 1) Atomics.compareExchange(words, lock, held, 0);
      acquire(words, lock, mine);
      const first = HEADER + words[2]! + stripe * STRIPE * stride;
      for (let s = 0; s < STRIPE; s++) words[first + s * stride + 2 + thread] = 0;
      release(words, lock, mine);
    }
  }

  open(ip: string): number {
    const words = this.words;
    const stride = 2 + this.threads;
    const tag = this.tagBase | (this.seq = (this.seq + 1) & 0xffff);
    const stripe = enter(words, this.stripes, ip, tag);
    const first = this.slots + stripe * STRIPE * stride;
    let slot = -1;
    let free = -1;
    for (let at = first; at < first + STRIPE * stride; at += stride) {
      if (words[at] === h1 && words[at + 1] === h2) {
        slot = at;
        break;
      }
      if (free === -1 && this.idle(at)) free = at;
    }
    if (slot === -1) {
      if (free === -1) {
        // Every slot of the stripe has an address with connections open: let this one in uncounted (fail open)
        // rather than block or throw. The table is sized (2x the connection limit) so that this cannot happen.
        release(words, HEADER + stripe, tag);
        return 1;
      }
      slot = free;
      words[slot] = h1;
      words[slot + 1] = h2;
    }
    words[slot + 2 + this.thread] = words[slot + 2 + this.thread]! + 1;
    let open = 0;
    for (let t = 2; t < stride; t++) open += words[slot + t]!;
    release(words, HEADER + stripe, tag);
    return open;
  }

  close(ip: string): void {
    const words = this.words;
    const stride = 2 + this.threads;
    const tag = this.tagBase | (this.seq = (this.seq + 1) & 0xffff);
    const stripe = enter(words, this.stripes, ip, tag);
    const first = this.slots + stripe * STRIPE * stride;
    for (let at = first; at < first + STRIPE * stride; at += stride) {
      if (words[at] !== h1 || words[at + 1] !== h2) continue;
      // Never below zero: a close for an open that failed open finds no count of this thread, or takes one of
      // another connection of the same address from this thread, which only undercounts.
      const own = words[at + 2 + this.thread]!;
      if (own > 0) words[at + 2 + this.thread] = own - 1;
      break;
    }
    release(words, HEADER + stripe, tag);
  }

  private idle(at: number): boolean {
    for (let t = 2; t < 2 + this.threads; t++) if (this.words[at + t] !== 0) return false;
    return true;
  }
}

/**
 * RateLimiter's token bucket between threads: the same arithmetic on the same two numbers (tokens, at) per
 * address, so it answers exactly as RateLimiter does for one thread while no stripe is full (always with at most
 * STRIPE addresses held; with more, a stripe can fill before `maxClients` addresses are held).
 */
export class SharedRateLimiter {
  private readonly words: Int32Array;
  private readonly buckets: Float64Array; // tokens, at per slot
  private readonly stripes: number;
  private readonly perMs: number;
  private readonly burst: number;
  private readonly tagBase: number;
  private seq = 0;
  private lastSweep = 0;
  /** The stripe the last sweep ended at. */
  private cursor = -1;

  /** A table of at least `maxClients` addresses. */
  static buffer(maxClients: number): SharedArrayBuffer {
    const stripes = stripesFor(maxClients);
    const buffer = new SharedArrayBuffer(SharedRateLimiter.floats(stripes) + stripes * STRIPE * 16);
    const words = new Int32Array(buffer, 0, HEADER);
    seed(words);
    words[2] = stripes;
    return buffer;
  }

  /** Byte offset of the Float64s, after the header, the locks and the keys. */
  private static floats(stripes: number): number {
    return Math.ceil(((HEADER + stripes + stripes * STRIPE * 2) * 4) / 8) * 8;
  }

  constructor(buffer: SharedArrayBuffer, limit: { perMs: number; burst: number; maxClients: number }) {
    this.stripes = new Int32Array(buffer, 0, HEADER)[2]!;
    if (this.stripes * STRIPE < limit.maxClients) throw new RangeError(`a table of ${this.stripes * STRIPE} slots cannot hold maxClients ${limit.maxClients}`);
    const floats = SharedRateLimiter.floats(this.stripes);
    this.words = new Int32Array(buffer, 0, floats / 4);
    this.buckets = new Float64Array(buffer, floats, this.stripes * STRIPE * 2);
    this.perMs = limit.perMs;
    this.burst = limit.burst;
    // Each instance its own lock owner id, so a lock taken over as stale is never released by its old holder.
    this.tagBase = ((Atomics.add(this.words, 3, 1) & 0x7fff) + 1) << 16;
  }

  /** Takes a token for `key` at `now` (ms): 0 when the request may go on, else the seconds to wait (at least 1). */
  take(key: string, now: number): number {
    const words = this.words;
    const b = this.buckets;
    const tag = this.tagBase | (this.seq = (this.seq + 1) & 0xffff);
    const stripe = enter(words, this.stripes, key, tag);
    const lock = HEADER + stripe;
    const keys = HEADER + this.stripes;
    let slot = -1;
    let free = -1;
    let victim = stripe * STRIPE;
    let fullest = -Infinity;
    for (let s = stripe * STRIPE; s < (stripe + 1) * STRIPE; s++) {
      const ka = words[keys + 2 * s]!;
      const kb = words[keys + 2 * s + 1]!;
      if (ka === h1 && kb === h2) {
        slot = s;
        break;
      }
      if (free !== -1) continue;
      const level = ka === 0 && kb === 0 ? Infinity : this.level(s, now);
      // A bucket full again is the same as none (what RateLimiter.sweep forgets): free to reuse.
      if (level >= this.burst) free = s;
      else if (level > fullest || (level === fullest && b[2 * s + 1]! < b[2 * victim + 1]!)) {
        victim = s;
        fullest = level;
      }
    }
    let wait = 0;
    if (slot === -1) {
      // No free slot: the fullest (then oldest) bucket goes, which at worst lets that address start again with a
      // full bucket, as RateLimiter's eviction does — never unbounded memory.
      slot = free !== -1 ? free : victim;
      words[keys + 2 * slot] = h1;
      words[keys + 2 * slot + 1] = h2;
      b[2 * slot] = this.burst - 1;
      b[2 * slot + 1] = now;
    } else {
      const tokens = Math.min(this.burst, this.level(slot, now));
      // Threads' clocks differ slightly: a `now` behind the bucket's leaves it as it is rather than draining it.
      if (now > b[2 * slot + 1]!) b[2 * slot + 1] = now;
      if (tokens >= 1) b[2 * slot] = tokens - 1;
      else {
        b[2 * slot] = tokens;
        wait = Math.max(1, Math.ceil((1 - tokens) / this.perMs / 1000));
      }
    }
    release(words, lock, tag);
    return wait;
  }

  /** Addresses held (a scan: not for the I/O path). */
  get size(): number {
    let n = 0;
    const keys = HEADER + this.stripes;
    for (let s = 0; s < this.stripes * STRIPE; s++) if (Atomics.load(this.words, keys + 2 * s) !== 0 || Atomics.load(this.words, keys + 2 * s + 1) !== 0) n++;
    return n;
  }

  /**
   * Empties the slots whose buckets are full again, at most once a second as RateLimiter does, SWEEP_STRIPES
   * stripes at a time: it runs on the I/O path's timeout sweep, and a pass over a table of 100,000 addresses at
   * once would stall it for milliseconds. take() reuses such slots anyway, so this is only for `size` to count
   * the addresses still limited; each thread may run it.
   */
  sweep(now: number): void {
    if (now - this.lastSweep < 1000) return;
    this.lastSweep = now;
    const keys = HEADER + this.stripes;
    for (let n = 0; n < Math.min(this.stripes, SWEEP_STRIPES); n++) {
      const stripe = (this.cursor = (this.cursor + 1) % this.stripes);
      const tag = this.tagBase | (this.seq = (this.seq + 1) & 0xffff);
      acquire(this.words, HEADER + stripe, tag);
      for (let s = stripe * STRIPE; s < (stripe + 1) * STRIPE; s++) {
        if ((this.words[keys + 2 * s]! !== 0 || this.words[keys + 2 * s + 1]! !== 0) && this.level(s, now) >= this.burst) {
          this.words[keys + 2 * s] = 0;
          this.words[keys + 2 * s + 1] = 0;
        }
      }
      release(this.words, HEADER + stripe, tag);
    }
  }

  /** Slot `s`'s tokens at `now` before the cap at burst: RateLimiter's sum, with no refill for a `now` behind. */
  private level(s: number, now: number): number {
    const at = this.buckets[2 * s + 1]!;
    return now > at ? this.buckets[2 * s]! + (now - at) * this.perMs : this.buckets[2 * s]!;
  }
}
