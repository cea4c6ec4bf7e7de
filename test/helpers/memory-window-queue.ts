// An in-memory WindowQueue for simulated agents in tests and the soak, where
// the agent's on-disk spool is not what is under test.
import type { WindowQueue } from '../../agent/window-queue.js';
import type { WindowUpload } from '../../proto/wire.js';

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

  has(seq: number): boolean {
    return this.windows.has(seq);
  }

  pendingSeqs(): number[] {
    return [...this.windows.keys()];
  }

  read(seq: number): WindowUpload | undefined {
    return this.windows.get(seq);
  }
}
