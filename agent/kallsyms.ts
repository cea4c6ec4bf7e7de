// Kernel symbols from /proc/kallsyms. The kernel text gets one mapping,
// [kernel.kallsyms], carrying the running kernel's build id; each loaded
// module gets its own mapping named [module]. kallsyms lists no sizes, so a
// symbol runs to the next one, bounded by the end of the kernel text or of
// its module.
import * as fs from 'node:fs';
import type { MappingSpec } from '../proto/pprof-builder.js';
import { findGnuBuildId } from './elf.js';
import { findMapsEntry } from './proc-maps.js';
import { SymbolIndex, compareBigints, type SymbolRange } from './symbol-index.js';

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

interface KallsymsLine {
  address: bigint;
  name: string;
  module: string | null;
  /** Upper-case type letter: an exported symbol. */
  global: boolean;
}

interface NamedSymbol {
  name: string;
  mapping: MappingSpec | null;
}

/**
 * Symbols outside the kernel text and outside any listed module (BPF programs,
 * ftrace trampolines) have no known extent; cap how far past its start an
 * address may be and still be attributed to such a symbol.
 */
const UNBOUNDED_SYMBOL_SPAN = 4096n;
const KERNEL_MAPPING_NAME = '[kernel.kallsyms]';
const TEXT_TYPES = new Set(['t', 'T', 'w', 'W']);
const HEX = /^[0-9a-fA-F]{1,16}$/;

function parseKallsyms(text: string): KallsymsLine[] {
  const lines: KallsymsLine[] = [];
  for (const line of text.split('\n')) {
    const firstSpace = line.indexOf(' ');
    if (firstSpace < 0 || line[firstSpace + 2] !== ' ') continue;
    const type = line[firstSpace + 1];
    if (!TEXT_TYPES.has(type)) continue;
    const hex = line.slice(0, firstSpace);
    if (!HEX.test(hex)) continue;
    const address = BigInt(`0x${hex}`);
    if (address === 0n) continue; // hidden by kptr_restrict
    const rest = line.slice(firstSpace + 3);
    const tab = rest.indexOf('\t');
    const name = tab < 0 ? rest : rest.slice(0, tab);
    const moduleField = tab < 0 ? '' : rest.slice(tab + 1).trim();
    const module = moduleField.startsWith('[') && moduleField.endsWith(']') ? moduleField.slice(1, -1) : null;
    lines.push({ address, name, module, global: type === 'T' || type === 'W' });
  }
  return lines;
}

function readText(path: string): string | null {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return null;
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

function coreTextMapping(lines: readonly KallsymsLine[], sysRoot: string): MappingSpec | null {
  const core = lines.filter((l) => l.module === null);
  if (core.length === 0) return null;
  const named = (n: string): bigint | undefined => core.find((l) => l.name === n)?.address;
  let lowest = core[0].address;
  let highest = core[0].address;
  for (const l of core) {
    if (l.address < lowest) lowest = l.address;
    if (l.address > highest) highest = l.address;
  }
  const start = named('_stext') ?? lowest;
  const limit = named('_etext') ?? highest + 1n;
  return textMapping(KERNEL_MAPPING_NAME, start, limit, readBuildId(`${sysRoot}/kernel/notes`));
}

class KernelSymbolTable {
  readonly index: SymbolIndex<NamedSymbol>;
  /** Kernel text and module mappings, sorted by start. */
  private readonly regions: { start: bigint; end: bigint; mapping: MappingSpec }[];

  constructor(lines: KallsymsLine[], core: MappingSpec | null, modules: Map<string, MappingSpec>) {
    this.regions = [...(core === null ? [] : [core]), ...modules.values()]
      .map(asRange)
      .sort((a, b) => compareBigints(a.start, b.start));
    const sorted = [...lines].sort((a, b) => compareBigints(a.address, b.address));
    const ranges: SymbolRange<NamedSymbol>[] = new Array(sorted.length);
    let nextStart: bigint | null = null; // first address greater than the current symbol's
    for (let i = sorted.length - 1; i >= 0; i--) {
      const l = sorted[i];
      if (i + 1 < sorted.length && sorted[i + 1].address > l.address) nextStart = sorted[i + 1].address;
      const mapping = findMapsEntry(this.regions, l.address)?.mapping ?? null;
      const bound = mapping?.limit ?? l.address + UNBOUNDED_SYMBOL_SPAN;
      const end = nextStart !== null && nextStart < bound ? nextStart : bound;
      const name = l.module === null ? l.name : `${l.name} [${l.module}]`;
      // Among aliases at one address the exported name is the one people know.
      ranges[i] = { start: l.address, end, value: { name, mapping }, rank: l.global ? 0 : 1 };
    }
    this.index = SymbolIndex.build(ranges);
  }

  region(address: bigint): MappingSpec | null {
    return findMapsEntry(this.regions, address)?.mapping ?? null;
  }
}

function asRange(mapping: MappingSpec): { start: bigint; end: bigint; mapping: MappingSpec } {
  return { start: mapping.start, end: mapping.limit, mapping };
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
    const table = this.table ?? this.load();
    const known = this.lookup(table, address);
    if (known !== null) return known;
    // Unknown address: a module or BPF program may have loaded since we read kallsyms.
    if (performance.now() - this.loadedAtMs < this.minRefreshIntervalMs) return { mapping: null, functionName: null };
    return this.lookup(this.load(), address) ?? { mapping: null, functionName: null };
  }

  private lookup(table: KernelSymbolTable, address: bigint): KernelFrameInfo | null {
    const hit = table.index.lookup(address);
    if (hit !== null) return { mapping: hit.value.mapping, functionName: hit.value.name };
    const region = table.region(address);
    return region === null ? null : { mapping: region, functionName: null };
  }

  private load(): KernelSymbolTable {
    const lines = parseKallsyms(readText(`${this.procRoot}/kallsyms`) ?? '');
    const modules = parseModules(readText(`${this.procRoot}/modules`) ?? '', this.sysRoot);
    this.table = new KernelSymbolTable(lines, coreTextMapping(lines, this.sysRoot), modules);
    this.loadedAtMs = performance.now();
    return this.table;
  }
}
