/**
 * `work`, bounded: settles as `work` does, or rejects with `onTimeout()`'s error once `ms` have passed. The late
 * result of `work` is dropped (and its rejection handled, so it never surfaces as an unhandled one); the timer is
 * cleared either way, so a bounded call never keeps the process alive.
 */
export function deadline<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  work.catch(() => {});
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
