// JIT symbols from a perf map file (/tmp/perf-PID.map, written by e.g.
// `node --perf-basic-prof`): one "START SIZE name" line per code object, hex
// numbers. The runtime appends while it runs, so the file is read
// incrementally; a later line wins over an earlier one for the same address,
// because JIT code regions get reused after garbage collection.
import * as fs from 'node:fs';
import { AddressColumn } from './address-column.js';
import { NameTable } from './name-table.js';
import { SymbolIndex } from './symbol-index.js';

/** Caps one read so a runaway file cannot make a single refresh allocate without limit. */
const MAX_READ_BYTES = 64 * 1024 * 1024;

function parseHex(field: string): bigint | null {
  const digits = field.startsWith('0x') || field.startsWith('0X') ? field.slice(2) : field;
  return /^[0-9a-fA-F]{1,16}$/.test(digits) ? BigInt(`0x${digits}`) : null;
}

/** JIT code objects in columns; an object's id is the order its line was read in. */
class JitSymbols {
  readonly starts = new AddressColumn();
  readonly ends = new AddressColumn();
  readonly names = new NameTable();

  /** Adds one "START SIZE name" line; malformed lines are skipped. */
  addLine(line: string): void {
    const first = line.indexOf(' ');
    const second = first < 0 ? -1 : line.indexOf(' ', first + 1);
    if (second < 0) return;
    const start = parseHex(line.slice(0, first));
    const size = parseHex(line.slice(first + 1, second));
    const name = line.slice(second + 1).trimEnd();
    if (start === null || size === null || size === 0n || name === '') return;
    this.starts.pushBigint(start);
    this.ends.pushBigint(start + size);
    this.names.add(name);
  }

  index(): SymbolIndex {
    // A later line wins: the code region was reused.
    return SymbolIndex.build({ starts: this.starts, ends: this.ends, rank: (id) => -id });
  }
}

export class PerfMap {
  private symbols = new JitSymbols();
  private index = this.symbols.index();
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
      for (const line of chunk.toString('utf8', 0, lastNewline).split('\n')) this.symbols.addLine(line);
      this.consumed += lastNewline + 1;
      this.index = this.symbols.index();
    } catch {
      // Read failed midway: keep what we had.
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Name of the JIT code at address; re-reads the file first if the address is unknown and the file grew. */
  lookup(address: bigint): string | null {
    let id = this.index.lookup(address);
    if (id < 0 && this.grew()) {
      this.refresh();
      id = this.index.lookup(address);
    }
    return id < 0 ? null : this.symbols.names.name(id);
  }

  private grew(): boolean {
    try {
      return fs.statSync(this.path).size !== this.consumed;
    } catch {
      return false;
    }
  }

  private reset(): void {
    this.symbols = new JitSymbols();
    this.consumed = 0;
    this.index = this.symbols.index();
  }
}
