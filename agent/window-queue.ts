// Windows waiting for the collector's ack. The uploader only sees this
// interface, so the on-disk spool (window-spool.ts) and the in-memory queue
// of tests and the soak (test/helpers/memory-window-queue.ts) are interchangeable.
import type { WindowUpload } from '../proto/wire.js';

export interface WindowQueue {
  add(window: WindowUpload): void;
  /** The collector has committed (or permanently refused) this window. */
  remove(seq: number): void;
  /** Whether this window is still waiting for its ack (not yet removed or dropped). */
  has(seq: number): boolean;
  /** Sequence numbers of the unacknowledged windows, oldest first. */
  pendingSeqs(): number[];
  /** An unacknowledged window; undefined once it is removed or dropped. Read on demand, so a large backlog need not sit in memory. */
  read(seq: number): WindowUpload | undefined;
  /** Windows dropped so far because the queue was full. */
  readonly dropped: number;
}
