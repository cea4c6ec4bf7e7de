// Windows waiting for the collector's ack. The uploader only sees this
// interface, so the on-disk spool (window-spool.ts) and the in-memory queue
// (simulated agents in tests and the soak) are interchangeable.
import type { WindowUpload } from '../proto/wire.js';

export interface WindowQueue {
  add(window: WindowUpload): void;
  /** The collector has committed (or permanently refused) this window. */
  remove(seq: number): void;
  /** Sequence numbers of the unacknowledged windows, oldest first. */
  pendingSeqs(): number[];
  /** An unacknowledged window; undefined once it is removed or dropped. Read on demand, so a large backlog need not sit in memory. */
  read(seq: number): WindowUpload | undefined;
  /** Windows dropped so far because the queue was full. */
  readonly dropped: number;
}

/** Bounded in memory: when full, the oldest window is dropped and counted. */
export class MemoryWindowQueue implements WindowQueue {
  private readonly windows = new Map<number, WindowUpload>();
  dropped = 0;

  constructor(
    private readonly maxWindows: number,
    private readonly onDrop: (window: WindowUpload) => void = () => {},
  ) {}

  add(window: WindowUpload): void {
    this.windows.set(window.seq, window);
    while (this.windows.size > this.maxWindows) {
      const oldest = this.windows.keys().next();
      if (oldest.done) break;
      const dropped = this.windows.get(oldest.value);
      this.windows.delete(oldest.value);
      this.dropped++;
      if (dropped) this.onDrop(dropped);
    }
  }

  remove(seq: number): void {
    this.windows.delete(seq);
  }

  pendingSeqs(): number[] {
    return [...this.windows.keys()];
  }

  read(seq: number): WindowUpload | undefined {
    return this.windows.get(seq);
  }
}
