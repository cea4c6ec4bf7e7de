// A pipe for a child's stdout that the agent drains on a timer instead of on
// every write. perf in unbuffered mode writes each record separately, and
// waking the event loop for each of those writes costs more CPU than the
// parsing; a timer batches them into a few reads per second. The kernel pipe
// (enlarged where allowed) holds what arrives in between.
import { closeSync, mkdtempSync, openSync, readSync, rmSync, constants as fsConstants } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeFifo, setPipeCapacity } from './libc.js';

const WANTED_CAPACITY_BYTES = 1024 * 1024;
const READ_BUFFER_BYTES = 256 * 1024;

export class PolledPipe {
  private readFd: number | undefined;
  private writeEnd: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);

  private constructor(readFd: number, writeFd: number) {
    this.readFd = readFd;
    this.writeEnd = writeFd;
  }

  /** A named pipe opened at both ends and unlinked at once: no path is left behind, only the two descriptors. */
  static open(): PolledPipe {
    const dir = mkdtempSync(path.join(tmpdir(), 'hotloop-pipe-'));
    try {
      const fifo = path.join(dir, 'stdout');
      makeFifo(fifo);
      // Non-blocking, so opening needs no writer and draining stops when the pipe is empty.
      const readFd = openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
      const writeFd = openSync(fifo, fsConstants.O_WRONLY);
      const pipe = new PolledPipe(readFd, writeFd);
      try {
        setPipeCapacity(readFd, WANTED_CAPACITY_BYTES);
      } catch {
        // The default 64 KiB still works; a slow drain then makes the writer wait.
      }
      return pipe;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** The descriptor to hand to the child as its stdout. */
  get writeFd(): number {
    if (this.writeEnd === undefined) throw new Error('write end already closed');
    return this.writeEnd;
  }

  /** Closes the agent's copy of the write end once the child holds its own, so the child's exit reads as EOF. */
  closeWriteEnd(): void {
    if (this.writeEnd !== undefined) closeSync(this.writeEnd);
    this.writeEnd = undefined;
  }

  startPolling(intervalMs: number, onChunk: (chunk: Buffer) => void, onError: (err: unknown) => void): void {
    this.timer ??= setInterval(() => {
      try {
        this.drain(onChunk);
      } catch (err) {
        onError(err);
      }
    }, intervalMs);
  }

  /** Reads whatever is in the pipe now; throws only on a read error other than "empty". */
  drain(onChunk: (chunk: Buffer) => void): void {
    for (;;) {
      if (this.readFd === undefined) return;
      let n: number;
      try {
        n = readSync(this.readFd, this.buffer, 0, this.buffer.length, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return;
        throw err;
      }
      if (n === 0) return;
      onChunk(Buffer.from(this.buffer.subarray(0, n)));
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.closeWriteEnd();
    if (this.readFd !== undefined) closeSync(this.readFd);
    this.readFd = undefined;
  }
}
