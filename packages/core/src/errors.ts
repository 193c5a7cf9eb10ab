/** Set on the prototype of every error of the suite; Symbol.for, so two installed copies share it. */
const kBrand = Symbol.for('cluster-session.error');

/**
 * The one root of every error the suite throws. A leaf class names its stable code (`static code`), a package's
 * family class the prefix its codes share (`static family`). `instanceof` is decided by the brand and the code,
 * not by the prototype chain, so it holds when an app ends up with two copies of a package (undici does the same
 * with its kUndiciError symbols): `err instanceof StoreUnavailableError` is true for either copy's error.
 */
export class ClusterSessionError<C extends string = string> extends Error {
  /** The code every instance of a leaf class carries (`CS_ERR_<AREA>_<WHAT>`). */
  static readonly code: string | undefined = undefined;
  /** The code prefix of a package's family class (`CS_ERR_BALANCER_`). */
  static readonly family: string | undefined = undefined;

  declare readonly [kBrand]: true;
  readonly code: C;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    const code = (new.target as typeof ClusterSessionError).code;
    if (code === undefined) throw new TypeError(`${new.target.name} declares no static code: only leaf error classes are constructed`);
    this.name = new.target.name;
    this.code = code as C;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (!isClusterSessionError(value)) return false;
    if (Object.hasOwn(this, 'code') && this.code !== undefined) return value.code === this.code;
    if (Object.hasOwn(this, 'family') && this.family !== undefined) return value.code.startsWith(this.family);
    if (this === ClusterSessionError) return true;
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}
Object.defineProperty(ClusterSessionError.prototype, kBrand, { value: true });

/** True for an error of any package of the suite, from any installed copy. */
export function isClusterSessionError(value: unknown): value is ClusterSessionError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kBrand] === true && typeof (value as { code?: unknown }).code === 'string';
}

/**
 * An error a request is answered with (a store that is down, a session too large): what the JSON error answer
 * (answer.ts) shows. `publicMessage` is written for the client; `message` may name internals and is only logged.
 */
export interface Answerable {
  readonly code: string;
  readonly status: number;
  readonly publicMessage: string;
  /** The limit that was exceeded, for a 413. */
  readonly limit?: number;
  /** Seconds a client should wait, for a 503 (default 1). */
  readonly retryAfter?: number;
}

export function isAnswerable(value: unknown): value is ClusterSessionError & Answerable {
  if (!isClusterSessionError(value)) return false;
  const v = value as unknown as Partial<Answerable>;
  return typeof v.status === 'number' && v.status >= 400 && v.status < 600 && typeof v.publicMessage === 'string';
}
