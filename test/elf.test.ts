import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { BinaryCache } from '../agent/binary-cache.js';
import { BinarySymbols } from '../agent/binary-symbols.js';
import { ElfFormatError, parseElf, readElfBuildId, readElfFile, type ElfImage } from '../agent/elf.js';
import { buildTarget, type BuiltTarget } from './helpers/symbolizer-target.js';

/** name → value of defined functions, as `readelf -sW` lists them for one symbol table. */
function readelfFunctions(file: string, table: '.symtab' | '.dynsym'): Map<string, bigint> {
  const out = execFileSync('readelf', ['-sW', file], { encoding: 'utf8' });
  const functions = new Map<string, bigint>();
  let inTable = false;
  for (const line of out.split('\n')) {
    if (line.startsWith('Symbol table')) inTable = line.includes(`'${table}'`);
    const f = line.trim().split(/\s+/);
    // Num: Value Size Type Bind Vis Ndx Name
    if (!inTable || f.length < 8 || !['FUNC', 'IFUNC'].includes(f[3]) || ['UND', 'ABS'].includes(f[6])) continue;
    functions.set(f[7].replace(/@.*$/, ''), BigInt(`0x${f[1]}`));
  }
  return functions;
}

/** Functions that record no size, e.g. the C runtime's hand-written _init. */
function readelfSizelessFunctions(file: string): Map<string, { value: bigint }> {
  const out = execFileSync('readelf', ['-sW', file], { encoding: 'utf8' });
  const functions = new Map<string, { value: bigint }>();
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && f[3] === 'FUNC' && f[2] === '0' && f[6] !== 'UND') functions.set(f[7], { value: BigInt(`0x${f[1]}`) });
  }
  return functions;
}

function readelfSection(file: string, name: string): { address: bigint; size: bigint } {
  const out = execFileSync('readelf', ['-SW', file], { encoding: 'utf8' });
  const line = out.split('\n').find((l) => l.includes(` ${name} `));
  assert.ok(line, `${file} has ${name}`);
  // [Nr] Name Type Address Off Size ...
  const f = line.replace(/^\s*\[\s*\d+\]\s*/, '').split(/\s+/);
  return { address: BigInt(`0x${f[2]}`), size: BigInt(`0x${f[4]}`) };
}

function nmDefinedFunctions(args: string[]): Map<string, bigint> {
  const out = execFileSync('nm', [...args, '--defined-only'], { encoding: 'utf8' });
  const functions = new Map<string, bigint>();
  for (const line of out.split('\n')) {
    const m = /^([0-9a-f]+) ([TtWi]) (\S+)$/.exec(line);
    if (m) functions.set(m[3].replace(/@.*$/, ''), BigInt(`0x${m[1]}`));
  }
  return functions;
}

/** The table's functions as objects, for comparing with the reference tools. */
function functionsOf(image: ElfImage): { name: string; value: bigint }[] {
  const { names, values } = image.functions;
  return Array.from({ length: image.functions.count }, (_, id) => ({ name: names.name(id), value: values.get(id) }));
}

function assertContainsAll(found: { name: string; value: bigint }[], expected: Map<string, bigint>): void {
  const have = new Set(found.map((f) => `${f.name}@${f.value}`));
  assert.ok(expected.size > 0, 'the reference tool listed functions');
  for (const [name, value] of expected) assert.ok(have.has(`${name}@${value}`), `missing ${name} at 0x${value.toString(16)}`);
}

interface ReferenceFunction {
  name: string;
  value: bigint;
  size: bigint;
  global: boolean;
  section: number;
  /** Position in the symbol table. */
  order: number;
}

/** Defined, named functions of one symbol table, with what naming them needs, as readelf lists them. */
function readelfFunctionDetails(file: string, table: '.symtab' | '.dynsym'): ReferenceFunction[] {
  const out = execFileSync('readelf', ['-sW', file], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const functions: ReferenceFunction[] = [];
  let inTable = false;
  for (const line of out.split('\n')) {
    if (line.startsWith('Symbol table')) inTable = line.includes(`'${table}'`);
    const f = line.trim().split(/\s+/);
    // Num: Value Size Type Bind Vis Ndx Name
    if (!inTable || f.length < 8 || !['FUNC', 'IFUNC'].includes(f[3]) || !/^\d+$/.test(f[6])) continue;
    functions.push({
      name: f[7].replace(/@.*$/, ''),
      value: BigInt(`0x${f[1]}`),
      size: BigInt(f[2]), // decimal, or 0x-prefixed when large
      global: f[4] !== 'LOCAL',
      section: Number(f[6]),
      order: Number(f[0].replace(':', '')),
    });
  }
  return functions;
}

/** Section index → end address, from readelf -SW. */
function readelfSectionEnds(file: string): Map<number, bigint> {
  const ends = new Map<number, bigint>();
  for (const line of execFileSync('readelf', ['-SW', file], { encoding: 'utf8' }).split('\n')) {
    const m = /^\s*\[\s*(\d+)\]/.exec(line);
    if (!m) continue;
    // [Nr] Name Type Address Off Size ...; the name may be empty, the address is the first 16-digit field.
    const f = line.slice(m[0].length).trim().split(/\s+/);
    const a = f.findIndex((x) => /^[0-9a-f]{16}$/.test(x));
    ends.set(Number(m[1]), BigInt(`0x${f[a]}`) + BigInt(`0x${f[a + 2]}`));
  }
  return ends;
}

/**
 * Where each function ends, by the rules applied symbol by symbol: its size,
 * or when it has none up to the next function, never past its section.
 */
function referenceEnds(functions: ReferenceFunction[], sectionEnds: Map<number, bigint>): bigint[] {
  const starts = [...new Set(functions.map((f) => f.value))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return functions.map((f) => {
    if (f.size > 0n) return f.value + f.size;
    const next = starts.find((s) => s > f.value);
    const sectionEnd = sectionEnds.get(f.section) ?? null;
    let end = next ?? sectionEnd ?? f.value + 1n;
    if (sectionEnd !== null && sectionEnd > f.value && sectionEnd < end) end = sectionEnd;
    return end;
  });
}

/** Among the functions covering address: sized over size-0, global over local, then the lowest start, then table order. */
function referenceName(functions: ReferenceFunction[], ends: bigint[], address: bigint): string | null {
  const rank = (f: ReferenceFunction): number => (f.size > 0n ? 0 : 2) + (f.global ? 0 : 1);
  const before = (a: ReferenceFunction, b: ReferenceFunction): boolean =>
    rank(a) !== rank(b) ? rank(a) < rank(b) : a.value !== b.value ? a.value < b.value : a.order < b.order;
  const covering = functions.filter((f, i) => address >= f.value && address < ends[i]);
  return covering.reduce<ReferenceFunction | null>((best, f) => (best === null || before(f, best) ? f : best), null)?.name ?? null;
}

let built: BuiltTarget;
before(() => {
  built = buildTarget();
});
after(() => {
  fs.rmSync(built.dir, { recursive: true, force: true });
});

describe('ELF reader', () => {
  it('reads the same functions from .symtab as readelf, and the ones nm names', () => {
    for (const file of [built.pieExecutable, built.noPieExecutable, built.linkedLibrary]) {
      const image = readElfFile(file);
      assert.equal(image.symbolTable, '.symtab');
      const functions = functionsOf(image);
      const expected = readelfFunctions(file, '.symtab');
      assertContainsAll(functions, expected);
      assert.equal(new Set(functions.map((f) => `${f.name}@${f.value}`)).size, new Set([...expected].map(([n, v]) => `${n}@${v}`)).size);
      const nm = nmDefinedFunctions([file]);
      for (const name of ['hotloop_leaf', 'hotloop_caller', 'main', 'linked_inner_work']) {
        if (!nm.has(name)) continue;
        assert.equal(functions.find((f) => f.name === name)?.value, nm.get(name));
      }
    }
  });

  it('falls back to .dynsym for a stripped binary (/bin/ls) and matches nm -D', () => {
    const image = readElfFile('/bin/ls');
    const hasSymtab = execFileSync('readelf', ['-SW', '/bin/ls'], { encoding: 'utf8' }).includes('.symtab');
    assert.equal(image.symbolTable, hasSymtab ? '.symtab' : '.dynsym');
    assertContainsAll(functionsOf(image), nmDefinedFunctions(hasSymtab ? ['/bin/ls'] : ['-D', '/bin/ls']));
    assertContainsAll(functionsOf(readElfFile(built.dlopenedLibrary)), nmDefinedFunctions(['-D', built.dlopenedLibrary]));
  });

  it('reads the GNU build id that readelf reports, also through the cheap path', () => {
    for (const file of [built.pieExecutable, built.linkedLibrary, '/bin/ls']) {
      const m = /Build ID: ([0-9a-f]+)/.exec(execFileSync('readelf', ['-n', file], { encoding: 'utf8' }));
      assert.ok(m, `readelf shows a build id for ${file}`);
      assert.equal(readElfFile(file).buildId, m[1]);
      assert.equal(readElfBuildId(file), m[1]);
    }
  });

  it('lists PT_LOAD segments as readelf does', () => {
    const out = execFileSync('readelf', ['-lW', built.pieExecutable], { encoding: 'utf8' });
    const loads = out
      .split('\n')
      .filter((l) => l.trim().startsWith('LOAD'))
      .map((l) => l.trim().split(/\s+/))
      .map((f) => ({ fileOffset: BigInt(f[1]), virtualAddress: BigInt(f[2]), fileSize: BigInt(f[4]), executable: f.slice(6, -1).join('').includes('E') }));
    assert.ok(loads.length > 0);
    assert.deepEqual(
      readElfFile(built.pieExecutable).loadSegments.map(({ fileOffset, virtualAddress, fileSize, executable }) => ({ fileOffset, virtualAddress, fileSize, executable })),
      loads,
    );
  });

  it('bounds size-0 symbols by the next symbol and by the end of their section', () => {
    const image = readElfFile(built.linkedLibrary);
    const symbols = new BinarySymbols(image);
    const fileOffsetOf = (image: ElfImage, address: bigint): bigint => {
      const segment = image.loadSegments.find((s) => address >= s.virtualAddress && address < s.virtualAddress + s.fileSize);
      assert.ok(segment, `0x${address.toString(16)} is loaded from the file`);
      return address - segment.virtualAddress + segment.fileOffset;
    };
    const nameAt = (address: bigint): string | null => symbols.functionAtFileOffset(fileOffsetOf(image, address));
    const sizeless = readelfSizelessFunctions(built.linkedLibrary);
    const init = sizeless.get('_init');
    assert.ok(init, 'crti provides a size-0 _init');
    const initSection = readelfSection(built.linkedLibrary, '.init');
    assert.equal(nameAt(init.value + 4n), '_init');
    assert.equal(nameAt(initSection.address + initSection.size - 1n), '_init');
    assert.notEqual(nameAt(initSection.address + initSection.size), '_init');

    const deregister = sizeless.get('deregister_tm_clones');
    const register = sizeless.get('register_tm_clones');
    assert.ok(deregister && register && register.value > deregister.value);
    assert.equal(nameAt(register.value - 1n), 'deregister_tm_clones');
    assert.equal(nameAt(register.value), 'register_tm_clones');
  });

  it('names every address as the symbol-by-symbol rules do, through the compact index', () => {
    const libc = execFileSync('ldd', [built.pieExecutable], { encoding: 'utf8' }).match(/=> (\S*libc\.so\S*)/)?.[1];
    assert.ok(libc, 'the target links libc');
    for (const file of [built.pieExecutable, built.noPieExecutable, built.linkedLibrary, built.dlopenedLibrary, libc]) {
      const image = readElfFile(file);
      assert.ok(image.symbolTable);
      const symbols = new BinarySymbols(image);
      const functions = readelfFunctionDetails(file, image.symbolTable);
      assert.equal(functions.length, image.functions.count, `${file}: every function read`);
      const ends = referenceEnds(functions, readelfSectionEnds(file));
      let compared = 0;
      functions.forEach((f, i) => {
        for (const address of [f.value - 1n, f.value, f.value + 1n, (f.value + ends[i]) / 2n, ends[i] - 1n, ends[i]]) {
          // Functions live in executable segments; other segments may share their file pages.
          const code = image.loadSegments.find((s) => s.executable && address >= s.virtualAddress && address < s.virtualAddress + s.fileSize);
          if (code === undefined) continue;
          const name = symbols.functionAtFileOffset(address - code.virtualAddress + code.fileOffset);
          assert.equal(name, referenceName(functions, ends, address), `${file} at 0x${address.toString(16)}`);
          compared++;
        }
      });
      assert.ok(compared > functions.length, `${file}: addresses compared`);
    }
  });

  it('rejects truncated and corrupt images with ElfFormatError only', () => {
    const bytes = fs.readFileSync(built.linkedLibrary);
    const image = parseElf(bytes);
    assert.ok(image.functions.count > 0);
    const sectionTableOffset = Number(bytes.readBigUInt64LE(40));
    // Cutting into the section header table, or before it, can never parse.
    for (const cut of [0, 3, 16, 63, 64, 100, 200, 1000, sectionTableOffset + 10, bytes.length - 1]) {
      assert.throws(() => parseElf(bytes.subarray(0, cut)), ElfFormatError, `cut at ${cut}`);
    }
    assert.throws(() => parseElf(Buffer.from('#!/bin/sh\necho not elf\n'.repeat(10))), /not an ELF file/);

    const hugeSectionTable = Buffer.from(bytes);
    hugeSectionTable.writeBigUInt64LE(0xffffffffffff0000n, 40);
    assert.throws(() => parseElf(hugeSectionTable), ElfFormatError);

    const elf32 = Buffer.from(bytes);
    elf32[4] = 1;
    assert.throws(() => parseElf(elf32), /not ELF64/);
  });

  it('remembers files that failed to parse instead of parsing them again', () => {
    const junk = `${built.dir}/junk.so`;
    fs.writeFileSync(junk, 'this is not an ELF file at all'.repeat(10));
    const cache = new BinaryCache(4);
    const first = cache.loadFile(junk, '/usr/lib/junk.so');
    assert.equal(first.ok, false);
    assert.equal(cache.loadFile(junk, '/usr/lib/junk.so'), first);
    assert.equal(cache.size, 1);
    // A changed file is a different file: parsed again.
    fs.writeFileSync(junk, fs.readFileSync(built.linkedLibrary));
    const second = cache.loadFile(junk, '/usr/lib/junk.so');
    assert.equal(second.ok, true);
    assert.equal(cache.size, 2);
  });
});
