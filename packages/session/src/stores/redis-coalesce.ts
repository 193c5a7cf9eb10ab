import type * as Ioredis from 'ioredis';

type Send = Ioredis.Redis['sendCommand'];
interface Corkable {
  writable: boolean;
  cork(): void;
  uncork(): void;
}

/**
 * The commands a connection is given in one event-loop turn go out in one socket write: its socket is corked at
 * the first and uncorked from setImmediate, after the poll phase has run the callbacks of every request that was
 * ready. Without it, with many requests in flight, each command paid a socket write of its own (bench session,
 * Redis /hit: 186-196 µs CPU per request against 131-150 with batching).
 *
 * Instead of ioredis's enableAutoPipelining, which batches the same way by building a Pipeline per batch: its
 * per-batch objects come to be allocated in the old generation (V8 pretenures an allocation site whose objects
 * survive young collections, as a batch in flight does), and each dead one then keeps its commands' callbacks, and
 * through them the requests, alive until the next full collection: ~4 MB promoted per young collection on /whoami,
 * ~0.4 MB with a corked socket (`--trace-gc-nvp`, bench/fixtures/session-app.ts).
 *
 * Only a command for the connection's own socket: ioredis hands a pipeline's or MULTI's commands a stream of their
 * own, which writes them in one piece already.
 */
export function coalesceWrites(redis: Ioredis.Redis): void {
  const send: Send = redis.sendCommand;
  let corked: Corkable | undefined;
  const uncork = () => {
    const socket = corked;
    corked = undefined;
    socket?.uncork();
  };
  redis.sendCommand = function (this: Ioredis.Redis, command, stream) {
    const socket = this.stream as Corkable | undefined;
    if (stream === undefined && socket !== undefined && socket !== corked && socket.writable) {
      // A new socket (a reconnect) within the turn: the old one's batch goes out now.
      if (corked !== undefined) uncork();
      socket.cork();
      corked = socket;
      setImmediate(uncork);
    }
    return send.call(this, command, stream);
  } as Send;
}
