import type { ServerResponse } from 'node:http';
import { heldResponse, type HeldResponse } from '@cluster-session/core';

type Method = 'writeHead' | 'write' | 'end';

/**
 * Runs `beforeHeaders` once, just before the response's headers would go out, and holds the response until it
 * settles ('issued': it did its work at once, nothing to hold). Signing with jose is asynchronous while writeHead/write/end are not, so the first of those calls (and any
 * that follow while signing) is queued and replayed afterwards in order. When `beforeHeaders` returns undefined
 * (nothing to issue) the call passes straight through, so the common case adds no latency. If it rejects, the
 * queued calls are dropped and `onFailure` answers instead.
 *
 * While held, the response looks sent to the app (core's heldResponse): a header change throws
 * ERR_HTTP_HEADERS_SENT to its caller and anything after the first end() is dropped, as under express-session,
 * never replayed into Node as a write after end (which crashed the worker). `beforeHeaders` gets the hold so its
 * own header work (the Set-Cookie) runs unguarded.
 */
export function holdResponse(
  res: ServerResponse,
  beforeHeaders: (hold: Pick<HeldResponse, 'unguarded'>) => Promise<void> | 'issued' | undefined,
  onFailure: (err: unknown) => void,
): void {
  const original = { writeHead: res.writeHead, write: res.write, end: res.end } as Record<Method, (...args: unknown[]) => unknown>;
  let state: 'idle' | 'busy' | 'done' = 'idle';
  const queue: [Method, unknown[]][] = [];
  let ended = false;
  let held: HeldResponse | undefined;
  const hold = { unguarded: <T>(fn: () => T): T => (held ? held.unguarded(fn) : fn()) };

  const restore = () => {
    state = 'done';
    held?.release();
    held = undefined;
    res.writeHead = original.writeHead as never;
    res.write = original.write as never;
    res.end = original.end as never;
  };
  const flush = () => {
    for (const [method, args] of queue.splice(0)) original[method].apply(res, args);
  };

  const intercept = (method: Method) =>
    function (this: ServerResponse, ...args: unknown[]): unknown {
      if (state === 'done') return original[method].apply(res, args);
      if (state === 'idle') {
        let pending: Promise<void> | 'issued' | undefined;
        try {
          pending = beforeHeaders(hold);
        } catch (err) {
          // e.g. session data JSON cannot encode (a BigInt, a cycle): answered as a failure, never dropped silently.
          pending = Promise.reject(err);
        }
        if (pending === undefined || pending === 'issued') {
          restore();
          const out = original[method].apply(res, args);
          // Issued without waiting: what follows this end is dropped, as it is while a signing holds the end.
          if (pending === 'issued' && method === 'end') dropAfterEnd(res);
          return out;
        }
        state = 'busy';
        pending.then(
          () => {
            restore();
            flush();
          },
          (err: unknown) => {
            // The app's response cannot go out as written (e.g. its session no longer fits a cookie): drop it and
            // let onFailure answer instead, through the now-unwrapped methods.
            queue.length = 0;
            restore();
            onFailure(err);
          },
        );
      }
      if (ended) return method === 'write' ? false : res;
      if (method === 'end') ended = true;
      queue.push([method, args]);
      // From the first held call on, the headers count as sent (writeHead, write and end all send them in Node).
      if (!held && state === 'busy') held = guardKeeping(res, intercept);
      return method === 'write' ? true : res;
    };

  res.writeHead = intercept('writeHead') as never;
  res.write = intercept('write') as never;
  res.end = intercept('end') as never;
}

/** core's guard, with write/end kept queueing through `intercept` (a streamed body's later writes and its end). */
function guardKeeping(res: ServerResponse, intercept: (m: Method) => (...args: unknown[]) => unknown): HeldResponse {
  const held = heldResponse(res);
  const keep = () => {
    res.write = intercept('write') as never;
    res.end = intercept('end') as never;
  };
  keep();
  return {
    release: () => held.release(),
    unguarded: <T>(fn: () => T): T => {
      const out = held.unguarded(fn);
      keep();
      return out;
    },
  };
}

/** A write or end after the answer's end: dropped (false, as express-session's second end), never a write after end in Node. */
function dropAfterEnd(res: ServerResponse): void {
  res.write = (() => false) as never;
  res.end = function (this: ServerResponse) {
    return this;
  } as never;
}
