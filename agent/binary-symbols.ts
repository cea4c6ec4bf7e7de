// Function lookup inside one ELF binary, keyed by file offset so the same
// table serves every process that maps the binary, wherever it was loaded.
// Only the index and the names (offsets into the binary's own string table)
// are kept; the rest of the symbol columns is dropped once the index is built.
import { AddressColumn } from './address-column.js';
import type { ElfFunctionTable, ElfImage, ElfLoadSegment, ElfSymbolNames } from './elf.js';
import { SymbolIndex, sortByStart } from './symbol-index.js';

function buildIndex(functions: ElfFunctionTable): SymbolIndex {
  const { values, sizes, global } = functions;
  const count = functions.count;
  // Where symbols overlap: sized beats size-0 (whose extent is only a guess),
  // global beats local (an alias's public name is the more useful one).
  const ranks = new Uint8Array(count);
  const ends = new AddressColumn(count);
  const order = sortByStart(values);
  let next = -1; // id of the first symbol starting after the current one
  for (let i = count - 1; i >= 0; i--) {
    const id = order[i];
    if (i + 1 < count && values.compare(order[i + 1], id) > 0) next = order[i + 1];
    const sized = sizes.hi[id] !== 0 || sizes.lo[id] !== 0;
    ranks[id] = (sized ? 0 : 2) + (global[id] ? 0 : 1);
    if (sized) {
      ends.setSum(id, values.hi[id], values.lo[id], sizes.hi[id], sizes.lo[id]);
      continue;
    }
    // Size unknown: it runs to the next symbol, but never past its section.
    const value = values.get(id);
    const sectionEnd = functions.sectionEnd(id);
    let end = next >= 0 ? values.get(next) : (sectionEnd ?? value + 1n);
    if (sectionEnd !== null && sectionEnd > value && sectionEnd < end) end = sectionEnd;
    ends.setBigint(id, end);
  }
  return SymbolIndex.build({ starts: values, ends, rank: (id) => ranks[id] }, order);
}

function segmentForOffset(segments: readonly ElfLoadSegment[], fileOffset: bigint): ElfLoadSegment | null {
  let best: ElfLoadSegment | null = null;
  for (const s of segments) {
    if (fileOffset < s.fileOffset || fileOffset >= s.fileOffset + s.fileSize) continue;
    // Page rounding can make two segments claim one offset; code lives in the executable one.
    if (best === null || (s.executable && !best.executable)) best = s;
  }
  return best;
}

export class BinarySymbols {
  readonly buildId: string;
  private readonly segments: ElfLoadSegment[];
  private readonly index: SymbolIndex;
  private readonly names: ElfSymbolNames;

  constructor(image: ElfImage) {
    this.buildId = image.buildId;
    this.segments = image.loadSegments;
    this.index = buildIndex(image.functions);
    this.names = image.functions.names;
  }

  get hasFunctions(): boolean {
    return this.index.size > 0;
  }

  /** ELF virtual address that the given file offset is loaded at, or null if no PT_LOAD covers it. */
  virtualAddressOf(fileOffset: bigint): bigint | null {
    const segment = segmentForOffset(this.segments, fileOffset);
    return segment === null ? null : fileOffset - segment.fileOffset + segment.virtualAddress;
  }

  /** fileOffset = runtime address - mapping start + mapping file offset. */
  functionAtFileOffset(fileOffset: bigint): string | null {
    const address = this.virtualAddressOf(fileOffset);
    const id = address === null ? -1 : this.index.lookup(address);
    return id < 0 ? null : this.names.name(id);
  }
}
