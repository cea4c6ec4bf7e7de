// JIT symbols from a perf map file (/tmp/perf-PID.map, written by e.g.
// `node --perf-basic-prof`): one "START SIZE name" line per code object, hex
// numbers. The runtime appends while it runs, so the file is read
// incrementally; a later line wins over an earlier one for the same address,
// because JIT code regions get reused after garbage collection.
import * as fs from 'node:fs';
import { SymbolIndex, type SymbolRange } from './symbol-index.js';

/** Caps one read so a runaway file cannot make a single refresh allocate without limit. */
const MAX_READ_BYTES = 64 * 1024 * 1024;

function parseHex(field: string): bigint | null {
  const digits = field.startsWith('0x') || field.startsWith('0X') ? field.slice(2) : field;
  return /^[0-9a-fA-F]{1,16}$/.test(digits) ? BigInt(`0x${digits}`) : null;
}

function parseLine(line: string, seq: number): SymbolRange<string> | null {
  const first = line.indexOf(' ');
  const second = first < 0 ? -1 : line.indexOf(' ', first + 1);
  if (second < 0) return null;
  const start = parseHex(line.slice(0, first));
  const size = parseHex(line.slice(first + 1, second));
  const name = line.slice(second + 1).trimEnd();
  if (start === null || size === null || size === 0n || name === '') return null;
  return { start, end: start + size, value: name, rank: -seq };
}

export class PerfMap {
  private readonly ranges: SymbolRange<string>[] = [];
  private index: SymbolIndex<string> = SymbolIndex.build([]);
  /** Bytes of complete lines consumed so far. */
  private consumed = 0;

  constructor(readonly path: string) {}

  /** Reads lines appended since the last refresh. Missing or unreadable file: nothing changes. */
  refresh(): void {
    let fd: number;
    try {
      // /tmp is world-writable: whoever planted a FIFO or a symlink there must not be able to block or redirect us.
      fd = fs.openSync(this.path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
    } catch {
      return;
    }
    try {
      const stat = fs.fstatSync(fd);
      if (!stat.isFile()) return;
      const size = stat.size;
      if (size < this.consumed) this.reset(); // truncated or replaced: start over
      if (size === this.consumed) return;
      const length = Math.min(size - this.consumed, MAX_READ_BYTES);
      const chunk = Buffer.alloc(length);
      const read = fs.readSync(fd, chunk, 0, length, this.consumed);
      // A line still being written has no newline yet; leave it for the next refresh.
      const lastNewline = chunk.lastIndexOf(0x0a, read - 1);
      if (lastNewline < 0) return;
      for (const line of chunk.toString('utf8', 0, lastNewline).split('\n')) {
        const range = parseLine(line, this.ranges.length);
        if (range !== null) this.ranges.push(range);
      }
      this.consumed += lastNewline + 1;
      this.index = SymbolIndex.build(this.ranges);
    } catch {
      // Read failed midway: keep what we had.
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Name of the JIT code at address; re-reads the file first if the address is unknown and the file grew. */
  lookup(address: bigint): string | null {
    const hit = this.index.lookup(address);
    if (hit !== null) return hit.value;
    if (!this.grew()) return null;
    this.refresh();
    return this.index.lookup(address)?.value ?? null;
  }

  private grew(): boolean {
    try {
      return fs.statSync(this.path).size !== this.consumed;
    } catch {
      return false;
    }
  }

  private reset(): void {
    this.ranges.length = 0;
    this.consumed = 0;
    this.index = SymbolIndex.build([]);
  }
}
