// Function lookup inside one ELF binary, keyed by file offset so the same
// table serves every process that maps the binary, wherever it was loaded.
import type { ElfFunctionSymbol, ElfImage, ElfLoadSegment } from './elf.js';
import { SymbolIndex, compareBigints, type SymbolRange } from './symbol-index.js';

// Where symbols overlap: sized beats size-0 (whose extent is only a guess),
// global beats local (an alias's public name is the more useful one).
function rank(symbol: ElfFunctionSymbol): number {
  return (symbol.size > 0n ? 0 : 2) + (symbol.global ? 0 : 1);
}

function toRanges(functions: readonly ElfFunctionSymbol[]): SymbolRange<string>[] {
  // Sorted once here; SymbolIndex.build's own sort is then cheap on sorted input.
  const sorted = [...functions].sort((a, b) => compareBigints(a.value, b.value));
  const ranges: SymbolRange<string>[] = new Array(sorted.length);
  let nextStart: bigint | null = null; // first start greater than the current symbol's
  for (let i = sorted.length - 1; i >= 0; i--) {
    const f = sorted[i];
    if (i + 1 < sorted.length && sorted[i + 1].value > f.value) nextStart = sorted[i + 1].value;
    let end = f.value + f.size;
    if (f.size === 0n) {
      // Size unknown: it runs to the next symbol, but never past its section.
      end = nextStart ?? f.sectionEnd ?? f.value + 1n;
      if (f.sectionEnd !== null && f.sectionEnd > f.value && f.sectionEnd < end) end = f.sectionEnd;
    }
    ranges[i] = { start: f.value, end, value: f.name, rank: rank(f) };
  }
  return ranges;
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
  private readonly index: SymbolIndex<string>;

  constructor(image: ElfImage) {
    this.buildId = image.buildId;
    this.segments = image.loadSegments;
    this.index = SymbolIndex.build(toRanges(image.functions));
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
    return address === null ? null : (this.index.lookup(address)?.value ?? null);
  }
}
