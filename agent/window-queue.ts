// Windows waiting for the collector's ack. The uploader only sees this
// interface, so an on-disk spool can stand in for the in-memory queue.
import type { WindowUpload } from '../proto/wire.js';

export interface WindowQueue {
  add(window: WindowUpload): void;
  /** The collector has committed (or permanently refused) this window. */
  remove(seq: number): void;
  /** Unacknowledged windows, oldest first. */
  pending(): WindowUpload[];
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

  pending(): WindowUpload[] {
    return [...this.windows.values()];
  }
}
