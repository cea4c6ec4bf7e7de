// Minimal ELF64 little-endian reader: just enough of the format (header,
// program headers, section headers, symbol tables, notes) to name functions
// and identify a binary by its GNU build id. Reads are bounded and checked
// against the file size, so a truncated or hostile file raises ElfFormatError
// instead of allocating without limit or reading garbage.
import * as fs from 'node:fs';
import { AddressColumn } from './address-column.js';
import { RecentNames } from './name-table.js';

export class ElfFormatError extends Error {
  override name = 'ElfFormatError';
}

export interface ElfLoadSegment {
  fileOffset: bigint;
  virtualAddress: bigint;
  fileSize: bigint;
  memorySize: bigint;
  executable: boolean;
}

/** Symbol names as offsets into the string table they came from, decoded only when asked for. */
export class ElfSymbolNames {
  private readonly recent = new RecentNames((id) => cString(this.strings, this.offsets[id]));

  constructor(
    private readonly strings: Buffer,
    private readonly offsets: Uint32Array,
  ) {}

  name(id: number): string {
    return this.recent.name(id);
  }
}

/**
 * Defined function symbols of one symbol table, in table order, as columns:
 * binaries carry 100k+ of them, too many for an object each.
 */
export class ElfFunctionTable {
  constructor(
    readonly names: ElfSymbolNames,
    readonly values: AddressColumn,
    /** 0 for symbols that do not record their size (often hand-written assembly). */
    readonly sizes: AddressColumn,
    /** 1 for a global or weak symbol. */
    readonly global: Uint8Array,
    private readonly sectionIndexes: Uint16Array,
    /** End address of each section, by section index. */
    private readonly sectionEnds: readonly bigint[],
  ) {}

  get count(): number {
    return this.values.length;
  }

  /** End address of the section holding the symbol; bounds size-0 symbols. */
  sectionEnd(id: number): bigint | null {
    return this.sectionEnds[this.sectionIndexes[id]] ?? null;
  }
}

const NO_FUNCTIONS = new ElfFunctionTable(
  new ElfSymbolNames(Buffer.alloc(0), new Uint32Array(0)),
  new AddressColumn(),
  new AddressColumn(),
  new Uint8Array(0),
  new Uint16Array(0),
  [],
);

export interface ElfImage {
  /** Lower-case hex, '' when the binary carries none. */
  buildId: string;
  loadSegments: ElfLoadSegment[];
  symbolTable: '.symtab' | '.dynsym' | null;
  functions: ElfFunctionTable;
}

/** One symbol/string table may not exceed this; bigger is corrupt for our purposes. */
const MAX_TABLE_BYTES = 256 * 1024 * 1024;
const MAX_NOTE_BYTES = 1024 * 1024;
const MAX_HEADER_TABLE_ENTRIES = 65536;

const ELF_HEADER_SIZE = 64;
const PROGRAM_HEADER_SIZE = 56;
const SECTION_HEADER_SIZE = 64;
const SYMBOL_SIZE = 24;

const PT_LOAD = 1;
const PT_NOTE = 4;
const PF_X = 1;
const SHT_SYMTAB = 2;
const SHT_NOTE = 7;
const SHT_NOBITS = 8;
const SHT_DYNSYM = 11;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;
const STB_LOCAL = 0;
const SHN_LORESERVE = 0xff00;
const NT_GNU_BUILD_ID = 3;

interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Buffer;
}

function checkedRange(src: ByteSource, offset: bigint | number, length: bigint | number, what: string): [number, number] {
  const off = BigInt(offset);
  const len = BigInt(length);
  if (off < 0n || len < 0n || off + len > BigInt(src.size)) {
    throw new ElfFormatError(`${what} lies outside the file (offset ${off}, length ${len}, file ${src.size})`);
  }
  return [Number(off), Number(len)];
}

class BufferSource implements ByteSource {
  constructor(private readonly bytes: Buffer) {}
  get size(): number {
    return this.bytes.length;
  }
  read(offset: number, length: number): Buffer {
    return this.bytes.subarray(offset, offset + length);
  }
}

class FileSource implements ByteSource {
  readonly size: number;
  constructor(private readonly fd: number) {
    this.size = fs.fstatSync(fd).size;
  }
  read(offset: number, length: number): Buffer {
    const out = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const n = fs.readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) throw new ElfFormatError(`file ended early at ${offset + done}`);
      done += n;
    }
    return out;
  }
}

interface ElfHeader {
  phoff: bigint;
  phnum: number;
  shoff: bigint;
  shnum: number;
  shstrndx: number;
}

interface SectionHeader {
  nameOffset: number;
  type: number;
  address: bigint;
  offset: bigint;
  size: bigint;
  link: number;
}

function readHeader(src: ByteSource): ElfHeader {
  if (src.size < ELF_HEADER_SIZE) throw new ElfFormatError('file shorter than an ELF header');
  const h = src.read(0, ELF_HEADER_SIZE);
  if (h[0] !== 0x7f || h[1] !== 0x45 || h[2] !== 0x4c || h[3] !== 0x46) throw new ElfFormatError('not an ELF file');
  if (h[4] !== 2) throw new ElfFormatError('not ELF64');
  if (h[5] !== 1) throw new ElfFormatError('not little-endian');
  const phentsize = h.readUInt16LE(54);
  const shentsize = h.readUInt16LE(58);
  const header: ElfHeader = {
    phoff: h.readBigUInt64LE(32),
    phnum: h.readUInt16LE(56),
    shoff: h.readBigUInt64LE(40),
    shnum: h.readUInt16LE(60),
    shstrndx: h.readUInt16LE(62),
  };
  if (header.phnum > 0 && phentsize !== PROGRAM_HEADER_SIZE) throw new ElfFormatError(`bad e_phentsize ${phentsize}`);
  if (header.shoff !== 0n && shentsize !== SECTION_HEADER_SIZE) throw new ElfFormatError(`bad e_shentsize ${shentsize}`);
  // Extended numbering: with very many sections the real counts live in section 0.
  if (header.shoff !== 0n && (header.shnum === 0 || header.shstrndx === 0xffff)) {
    const s0 = readSectionHeader(src, header.shoff, 0);
    if (header.shnum === 0) header.shnum = Number(s0.size);
    if (header.shstrndx === 0xffff) header.shstrndx = s0.link;
  }
  if (header.shnum > MAX_HEADER_TABLE_ENTRIES) throw new ElfFormatError(`too many sections (${header.shnum})`);
  return header;
}

function readSectionHeader(src: ByteSource, shoff: bigint, index: number): SectionHeader {
  const [off, len] = checkedRange(src, shoff + BigInt(index * SECTION_HEADER_SIZE), SECTION_HEADER_SIZE, 'section header');
  const s = src.read(off, len);
  return {
    nameOffset: s.readUInt32LE(0),
    type: s.readUInt32LE(4),
    address: s.readBigUInt64LE(16),
    offset: s.readBigUInt64LE(24),
    size: s.readBigUInt64LE(32),
    link: s.readUInt32LE(40),
  };
}

function readSectionHeaders(src: ByteSource, header: ElfHeader): SectionHeader[] {
  if (header.shoff === 0n) return [];
  const [off, len] = checkedRange(src, header.shoff, header.shnum * SECTION_HEADER_SIZE, 'section header table');
  const table = src.read(off, len);
  const sections: SectionHeader[] = [];
  for (let i = 0; i < header.shnum; i++) {
    const b = i * SECTION_HEADER_SIZE;
    sections.push({
      nameOffset: table.readUInt32LE(b),
      type: table.readUInt32LE(b + 4),
      address: table.readBigUInt64LE(b + 16),
      offset: table.readBigUInt64LE(b + 24),
      size: table.readBigUInt64LE(b + 32),
      link: table.readUInt32LE(b + 40),
    });
  }
  return sections;
}

interface ProgramHeader {
  type: number;
  flags: number;
  offset: bigint;
  virtualAddress: bigint;
  fileSize: bigint;
  memorySize: bigint;
}

function readProgramHeaders(src: ByteSource, header: ElfHeader): ProgramHeader[] {
  if (header.phnum === 0) return [];
  const [off, len] = checkedRange(src, header.phoff, header.phnum * PROGRAM_HEADER_SIZE, 'program header table');
  const table = src.read(off, len);
  const headers: ProgramHeader[] = [];
  for (let i = 0; i < header.phnum; i++) {
    const b = i * PROGRAM_HEADER_SIZE;
    headers.push({
      type: table.readUInt32LE(b),
      flags: table.readUInt32LE(b + 4),
      offset: table.readBigUInt64LE(b + 8),
      virtualAddress: table.readBigUInt64LE(b + 16),
      fileSize: table.readBigUInt64LE(b + 32),
      memorySize: table.readBigUInt64LE(b + 40),
    });
  }
  return headers;
}

function readBlock(src: ByteSource, offset: bigint, size: bigint, limit: number, what: string): Buffer {
  if (size > BigInt(limit)) throw new ElfFormatError(`${what} too large (${size} bytes)`);
  const [off, len] = checkedRange(src, offset, size, what);
  return src.read(off, len);
}

function cString(table: Buffer, offset: number): string {
  if (offset >= table.length) return '';
  let end = table.indexOf(0, offset);
  if (end < 0) end = table.length;
  return table.toString('utf8', offset, end);
}

/**
 * Finds the GNU build id in a run of ELF notes (a PT_NOTE segment, a
 * SHT_NOTE section, or /sys/kernel/notes). Returns lower-case hex or null.
 */
export function findGnuBuildId(notes: Buffer): string | null {
  const align4 = (n: number): number => (n + 3) & ~3;
  let pos = 0;
  while (pos + 12 <= notes.length) {
    const nameSize = notes.readUInt32LE(pos);
    const descSize = notes.readUInt32LE(pos + 4);
    const type = notes.readUInt32LE(pos + 8);
    const nameStart = pos + 12;
    const descStart = nameStart + align4(nameSize);
    const descEnd = descStart + descSize;
    if (descEnd > notes.length) return null;
    const name = notes.toString('latin1', nameStart, nameStart + nameSize).replace(/\0+$/, '');
    if (name === 'GNU' && type === NT_GNU_BUILD_ID && descSize > 0) {
      return notes.toString('hex', descStart, descEnd);
    }
    pos = descStart + align4(descSize);
  }
  return null;
}

function buildIdFromSegments(src: ByteSource, segments: ProgramHeader[]): string | null {
  for (const ph of segments) {
    if (ph.type !== PT_NOTE) continue;
    const id = findGnuBuildId(readBlock(src, ph.offset, ph.fileSize, MAX_NOTE_BYTES, 'note segment'));
    if (id !== null) return id;
  }
  return null;
}

function buildIdFromSections(src: ByteSource, sections: SectionHeader[]): string | null {
  for (const sh of sections) {
    if (sh.type !== SHT_NOTE) continue;
    const id = findGnuBuildId(readBlock(src, sh.offset, sh.size, MAX_NOTE_BYTES, 'note section'));
    if (id !== null) return id;
  }
  return null;
}

function readFunctionSymbols(src: ByteSource, sections: SectionHeader[], table: SectionHeader): ElfFunctionTable {
  if (table.link >= sections.length) throw new ElfFormatError(`symbol table links to missing section ${table.link}`);
  const strings = sections[table.link];
  if (strings.type === SHT_NOBITS) return NO_FUNCTIONS;
  const stringBytes = readBlock(src, strings.offset, strings.size, MAX_TABLE_BYTES, 'string table');
  const symbolBytes = readBlock(src, table.offset, table.size, MAX_TABLE_BYTES, 'symbol table');
  const isNamedFunction = (b: number): boolean => {
    const type = symbolBytes[b + 4] & 0xf;
    if (type !== STT_FUNC && type !== STT_GNU_IFUNC) return false;
    const sectionIndex = symbolBytes.readUInt16LE(b + 6);
    if (sectionIndex === 0 || sectionIndex >= SHN_LORESERVE) return false; // undefined or absolute
    const nameOffset = symbolBytes.readUInt32LE(b);
    return nameOffset < stringBytes.length && stringBytes[nameOffset] !== 0;
  };
  // Counted first so the columns are allocated once, at their final size,
  // and filled straight from the table's bytes.
  let count = 0;
  for (let b = 0; b + SYMBOL_SIZE <= symbolBytes.length; b += SYMBOL_SIZE) if (isNamedFunction(b)) count++;
  if (count === 0) return NO_FUNCTIONS;
  const nameOffsets = new Uint32Array(count);
  const values = new AddressColumn(count);
  const sizes = new AddressColumn(count);
  const global = new Uint8Array(count);
  const sectionIndexes = new Uint16Array(count);
  let id = 0;
  for (let b = 0; b + SYMBOL_SIZE <= symbolBytes.length; b += SYMBOL_SIZE) {
    if (!isNamedFunction(b)) continue;
    nameOffsets[id] = symbolBytes.readUInt32LE(b);
    values.set(id, symbolBytes.readUInt32LE(b + 12), symbolBytes.readUInt32LE(b + 8));
    sizes.set(id, symbolBytes.readUInt32LE(b + 20), symbolBytes.readUInt32LE(b + 16));
    global[id] = symbolBytes[b + 4] >> 4 !== STB_LOCAL ? 1 : 0;
    sectionIndexes[id] = symbolBytes.readUInt16LE(b + 6);
    id++;
  }
  const sectionEnds = sections.map((s) => s.address + s.size);
  return new ElfFunctionTable(new ElfSymbolNames(stringBytes, nameOffsets), values, sizes, global, sectionIndexes, sectionEnds);
}

function sectionName(src: ByteSource, sections: SectionHeader[], header: ElfHeader): (s: SectionHeader) => string {
  const names = sections[header.shstrndx];
  if (names === undefined || names.type === SHT_NOBITS) return () => '';
  const bytes = readBlock(src, names.offset, names.size, MAX_TABLE_BYTES, 'section name table');
  return (s) => cString(bytes, s.nameOffset);
}

function parse(src: ByteSource): ElfImage {
  const header = readHeader(src);
  const segments = readProgramHeaders(src, header);
  const sections = readSectionHeaders(src, header);
  const nameOf = sectionName(src, sections, header);

  let symbolTable: ElfImage['symbolTable'] = null;
  let functions = NO_FUNCTIONS;
  const symtab = sections.find((s) => s.type === SHT_SYMTAB);
  if (symtab !== undefined) functions = readFunctionSymbols(src, sections, symtab);
  if (functions.count > 0) {
    symbolTable = '.symtab';
  } else {
    // Stripped binaries keep only the dynamic (exported) symbols.
    const dynsym = sections.find((s) => s.type === SHT_DYNSYM);
    if (dynsym !== undefined) functions = readFunctionSymbols(src, sections, dynsym);
    if (functions.count > 0) symbolTable = '.dynsym';
  }

  const buildIdSection = sections.find((s) => s.type === SHT_NOTE && nameOf(s) === '.note.gnu.build-id');
  const buildId =
    (buildIdSection !== undefined ? buildIdFromSections(src, [buildIdSection]) : null) ??
    buildIdFromSegments(src, segments) ??
    buildIdFromSections(src, sections) ??
    '';

  const loadSegments = segments
    .filter((p) => p.type === PT_LOAD)
    .map((p) => ({
      fileOffset: p.offset,
      virtualAddress: p.virtualAddress,
      fileSize: p.fileSize,
      memorySize: p.memorySize,
      executable: (p.flags & PF_X) !== 0,
    }));
  return { buildId, loadSegments, symbolTable, functions };
}

function withFile<T>(path: string, fn: (src: ByteSource) => T): T {
  const fd = fs.openSync(path, 'r');
  try {
    return fn(new FileSource(fd));
  } finally {
    fs.closeSync(fd);
  }
}

/** Parses an in-memory ELF image (e.g. the vDSO copied out of a process). Throws ElfFormatError. */
export function parseElf(bytes: Buffer): ElfImage {
  return parse(new BufferSource(bytes));
}

/** Parses an ELF file. Throws ElfFormatError on bad content, fs errors as is. */
export function readElfFile(path: string): ElfImage {
  return withFile(path, parse);
}

/**
 * Reads only the build id, touching the header, program headers and notes:
 * a cheap identity check before deciding whether a full parse is needed.
 */
export function readElfBuildId(path: string): string {
  return withFile(path, (src) => {
    const header = readHeader(src);
    return buildIdFromSegments(src, readProgramHeaders(src, header)) ?? buildIdFromSections(src, readSectionHeaders(src, header)) ?? '';
  });
}
