// Kernel symbols from /proc/kallsyms. The kernel text gets one mapping,
// [kernel.kallsyms], carrying the running kernel's build id; each loaded
// module gets its own mapping named [module]. kallsyms lists no sizes, so a
// symbol runs to the next one, bounded by the end of the kernel text or of
// its module.
import * as fs from 'node:fs';
import type { MappingSpec } from '../proto/pprof-builder.js';
import { AddressColumn, lessThan } from './address-column.js';
import { findGnuBuildId } from './elf.js';
import { NameTable } from './name-table.js';
import { SymbolIndex, sortByStart } from './symbol-index.js';

export interface KernelSymbolsOptions {
  /** Where kallsyms and modules are read; default '/proc'. */
  procRoot?: string;
  /** Where kernel and module build-id notes are read; default '/sys'. */
  sysRoot?: string;
  /** Minimum time between re-reads caused by unknown addresses; default 10 s. */
  minRefreshIntervalMs?: number;
}

export interface KernelFrameInfo {
  mapping: MappingSpec | null;
  functionName: string | null;
}

/** Text symbols of /proc/kallsyms; a symbol's id is its position among them. */
interface Kallsyms {
  starts: AddressColumn;
  /** "name", or "name [module]" for a module's symbol. */
  names: NameTable;
  /** 1 for an upper-case type letter: an exported symbol. */
  global: Uint8Array;
  /** The kernel text as kallsyms outlines it, or null if it lists no kernel (non-module) symbol. */
  core: { start: bigint; limit: bigint } | null;
}

/**
 * Symbols outside the kernel text and outside any listed module (BPF programs,
 * ftrace trampolines) have no known extent; cap how far past its start an
 * address may be and still be attributed to such a symbol.
 */
const UNBOUNDED_SYMBOL_SPAN = 4096;
const ADDRESS_LIMIT = 1n << 64n;
const KERNEL_MAPPING_NAME = '[kernel.kallsyms]';
const SPACE = 0x20;
const TAB = 0x09;
const NEWLINE = 0x0a;
const READ_CHUNK_BYTES = 64 * 1024;

function hexDigit(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const lower = byte | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/** t T w W: code. */
function isTextType(byte: number): boolean {
  return byte === 0x74 || byte === 0x54 || byte === 0x77 || byte === 0x57;
}

function isBlank(byte: number): boolean {
  return byte === SPACE || (byte >= TAB && byte <= 0x0d);
}

/**
 * Calls onLine(bytes, start, end) for each line of the file, reading it in
 * small chunks: /proc/kallsyms is megabytes, of which only the names are kept.
 * An unreadable file has no lines; a read failing midway ends them early.
 */
function forEachLine(path: string, onLine: (bytes: Buffer, start: number, end: number) => void): void {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch {
    return;
  }
  try {
    let bytes = Buffer.allocUnsafe(READ_CHUNK_BYTES);
    let filled = 0;
    for (;;) {
      if (filled === bytes.length) {
        // One line longer than the buffer.
        const grown = Buffer.allocUnsafe(bytes.length * 2);
        bytes.copy(grown, 0, 0, filled);
        bytes = grown;
      }
      const read = fs.readSync(fd, bytes, filled, bytes.length - filled, null);
      filled += read;
      let start = 0;
      for (let eol = bytes.indexOf(NEWLINE, start); eol >= 0 && eol < filled; eol = bytes.indexOf(NEWLINE, start)) {
        onLine(bytes, start, eol);
        start = eol + 1;
      }
      if (read === 0) {
        if (start < filled) onLine(bytes, start, filled);
        return;
      }
      bytes.copy(bytes, 0, start, filled);
      filled -= start;
    }
  } catch {
    // keep the lines read so far
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads lines "ADDRESS TYPE NAME[\tMODULE]" of text symbols straight from
 * the bytes into columns: kallsyms has 100k+ lines, too many for a string or
 * object each.
 */
class KallsymsParser {
  private readonly starts = new AddressColumn();
  private readonly names = new NameTable();
  private global = new Uint8Array(1024);
  // Core text extent: first _stext/_etext seen, else lowest and highest address.
  private lowest = -1;
  private highest = -1;
  private stext = -1;
  private etext = -1;

  line(bytes: Buffer, start: number, eol: number): void {
    let hi = 0;
    let lo = 0;
    let p = start;
    for (; p < eol && p - start <= 16; p++) {
      const digit = hexDigit(bytes[p]);
      if (digit < 0) break;
      hi = hi * 16 + (lo >>> 28);
      lo = ((lo << 4) | digit) >>> 0;
    }
    const digits = p - start;
    if (digits === 0 || digits > 16 || bytes[p] !== SPACE || p + 2 >= eol || bytes[p + 2] !== SPACE) return;
    const type = bytes[p + 1];
    if (!isTextType(type)) return;
    if (hi === 0 && lo === 0) return; // hidden by kptr_restrict
    const nameStart = p + 3;
    let nameEnd = nameStart;
    while (nameEnd < eol && bytes[nameEnd] !== TAB) nameEnd++;
    let moduleStart = nameEnd + 1;
    let moduleEnd = eol;
    while (moduleStart < moduleEnd && isBlank(bytes[moduleStart])) moduleStart++;
    while (moduleEnd > moduleStart && isBlank(bytes[moduleEnd - 1])) moduleEnd--;
    const inModule = moduleEnd - moduleStart >= 2 && bytes[moduleStart] === 0x5b && bytes[moduleEnd - 1] === 0x5d; // [module]

    const id = this.starts.length;
    this.starts.push(hi, lo);
    if (id === this.global.length) {
      const grown = new Uint8Array(id * 2);
      grown.set(this.global);
      this.global = grown;
    }
    this.global[id] = type === 0x54 || type === 0x57 ? 1 : 0; // T W
    this.names.append(bytes, nameStart, nameEnd);
    if (inModule) {
      this.names.appendString(' ');
      this.names.append(bytes, moduleStart, moduleEnd);
    } else {
      if (this.lowest < 0 || this.starts.compare(id, this.lowest) < 0) this.lowest = id;
      if (this.highest < 0 || this.starts.compare(id, this.highest) > 0) this.highest = id;
      const name = nameEnd - nameStart === 6 ? bytes.toString('latin1', nameStart, nameEnd) : '';
      if (name === '_stext' && this.stext < 0) this.stext = id;
      if (name === '_etext' && this.etext < 0) this.etext = id;
    }
    this.names.endName();
  }

  finish(): Kallsyms {
    const { starts, names, lowest, highest, stext, etext } = this;
    names.trim(); // starts are dropped once the index is built
    const core =
      lowest < 0 ? null : { start: starts.get(stext >= 0 ? stext : lowest), limit: etext >= 0 ? starts.get(etext) : starts.get(highest) + 1n };
    return { starts, names, global: this.global, core };
  }
}

function readBuildId(path: string): string {
  try {
    return findGnuBuildId(fs.readFileSync(path)) ?? '';
  } catch {
    return '';
  }
}

function textMapping(file: string, start: bigint, limit: bigint, buildId: string): MappingSpec {
  return { start, limit, fileOffset: 0n, file, buildId, hasFunctions: true };
}

/** /proc/modules lines look like "ext4 1015808 1 - Live 0xffffffffc0a00000 (E)". */
function parseModules(text: string, sysRoot: string): Map<string, MappingSpec> {
  const modules = new Map<string, MappingSpec>();
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 6 || !/^0x[0-9a-f]+$/i.test(fields[5]) || !/^\d+$/.test(fields[1])) continue;
    const base = BigInt(fields[5]);
    if (base === 0n) continue;
    const name = fields[0];
    const buildId = readBuildId(`${sysRoot}/module/${name}/notes/.note.gnu.build-id`);
    modules.set(name, textMapping(`[${name}]`, base, base + BigInt(fields[1]), buildId));
  }
  return modules;
}

class KernelSymbolTable {
  private readonly index: SymbolIndex;
  private readonly names: NameTable;
  /** Kernel text and module mappings, sorted by start. */
  private readonly regions: MappingSpec[];
  private readonly regionStarts: AddressColumn;
  private readonly regionEnds: AddressColumn;
  /** Index in regions of the region holding each symbol's start, or noRegion. */
  private readonly regionOf: Uint16Array | Uint32Array;
  private readonly noRegion: number;

  constructor(kallsyms: Kallsyms, regions: MappingSpec[]) {
    const { starts, global } = kallsyms;
    this.names = kallsyms.names;
    this.regions = [...regions].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    this.regionStarts = new AddressColumn(this.regions.length);
    this.regionEnds = new AddressColumn(this.regions.length);
    this.regions.forEach((r, i) => {
      this.regionStarts.setBigint(i, r.start);
      this.regionEnds.setBigint(i, r.limit);
    });

    const count = starts.length;
    this.noRegion = this.regions.length < 0xffff ? 0xffff : 0xffffffff;
    this.regionOf = this.noRegion === 0xffff ? new Uint16Array(count) : new Uint32Array(count);
    const ends = new AddressColumn(count);
    const order = sortByStart(starts);
    let next = -1; // id of the first symbol starting after the current one
    for (let i = count - 1; i >= 0; i--) {
      const id = order[i];
      if (i + 1 < count && starts.compare(order[i + 1], id) > 0) next = order[i + 1];
      // kallsyms has no sizes: a symbol runs to the next one, bounded by its region.
      const region = this.regionAt(starts.hi[id], starts.lo[id]);
      if (region >= 0) {
        this.regionOf[id] = region;
        ends.set(id, this.regionEnds.hi[region], this.regionEnds.lo[region]);
      } else {
        this.regionOf[id] = this.noRegion;
        ends.setSum(id, starts.hi[id], starts.lo[id], 0, UNBOUNDED_SYMBOL_SPAN);
      }
      if (next >= 0 && lessThan(starts.hi[next], starts.lo[next], ends.hi[id], ends.lo[id])) {
        ends.set(id, starts.hi[next], starts.lo[next]);
      }
    }
    // Among aliases at one address the exported name is the one people know.
    this.index = SymbolIndex.build({ starts, ends, rank: (id) => (global[id] ? 0 : 1) }, order);
  }

  lookup(address: bigint): KernelFrameInfo | null {
    const id = this.index.lookup(address);
    if (id >= 0) {
      const region = this.regionOf[id];
      return { mapping: region === this.noRegion ? null : this.regions[region], functionName: this.names.name(id) };
    }
    if (address < 0n || address >= ADDRESS_LIMIT) return null;
    const region = this.regionAt(Number(address >> 32n), Number(address & 0xffffffffn));
    return region < 0 ? null : { mapping: this.regions[region], functionName: null };
  }

  /** The region holding an address, or -1; searched as findMapsEntry does, so that overlapping (bogus) regions resolve the same way. */
  private regionAt(hi: number, lo: number): number {
    const { regionStarts: starts, regionEnds: ends } = this;
    let low = 0;
    let high = this.regions.length - 1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      if (lessThan(hi, lo, starts.hi[mid], starts.lo[mid])) high = mid - 1;
      else if (!lessThan(hi, lo, ends.hi[mid], ends.lo[mid])) low = mid + 1;
      else return mid;
    }
    return -1;
  }
}

export class KernelSymbols {
  private readonly procRoot: string;
  private readonly sysRoot: string;
  private readonly minRefreshIntervalMs: number;
  private table: KernelSymbolTable | null = null;
  private loadedAtMs = 0;

  constructor(opts: KernelSymbolsOptions = {}) {
    this.procRoot = opts.procRoot ?? '/proc';
    this.sysRoot = opts.sysRoot ?? '/sys';
    this.minRefreshIntervalMs = opts.minRefreshIntervalMs ?? 10_000;
  }

  resolve(address: bigint): KernelFrameInfo {
    const known = (this.table ?? this.load()).lookup(address);
    if (known !== null) return known;
    // Unknown address: a module or BPF program may have loaded since we read kallsyms.
    if (performance.now() - this.loadedAtMs < this.minRefreshIntervalMs) return { mapping: null, functionName: null };
    return this.load().lookup(address) ?? { mapping: null, functionName: null };
  }

  private load(): KernelSymbolTable {
    // Dropped first so the old table and the new one's parse never coexist at the peak.
    this.table = null;
    const parser = new KallsymsParser();
    forEachLine(`${this.procRoot}/kallsyms`, (bytes, start, end) => parser.line(bytes, start, end));
    const kallsyms = parser.finish();
    const { core } = kallsyms;
    const coreMapping = core === null ? [] : [textMapping(KERNEL_MAPPING_NAME, core.start, core.limit, readBuildId(`${this.sysRoot}/kernel/notes`))];
    const modules = parseModules(readText(`${this.procRoot}/modules`), this.sysRoot);
    this.table = new KernelSymbolTable(kallsyms, [...coreMapping, ...modules.values()]);
    this.loadedAtMs = performance.now();
    return this.table;
  }
}

function readText(path: string): string {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
