// Turns raw stack addresses into pprof frames: kernel addresses via
// /proc/kallsyms, user addresses via the ELF symbols of the mapped file, JIT
// code via the process's perf map. A process's layout and symbol tables are
// captured while it runs (rememberProcess), so samples of a process that
// exited before the window closed are still named.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { FrameSpec, MappingSpec } from '../proto/pprof-builder.js';
import { BinaryCache, type LoadedBinary } from './binary-cache.js';
import type { BinarySymbols } from './binary-symbols.js';
import { KernelSymbols } from './kallsyms.js';
import { PerfMap } from './perf-map.js';
import { readProcessMemory } from './process-memory.js';
import { findMapsEntry, mapFilesName, parseProcMaps, type ProcMapsEntry } from './proc-maps.js';

export interface SymbolizerOptions {
  /** default '/proc' */
  procRoot?: string;
  /** Parsed binaries kept across processes; default 512. */
  maxCachedFiles?: number;
}

interface ProcessMapping {
  start: bigint;
  end: bigint;
  entry: ProcMapsEntry;
  spec: MappingSpec;
  symbols: BinarySymbols | null;
}

interface ProcessRecord {
  mapsDigest: string;
  mappings: ProcessMapping[];
  perfMap: PerfMap;
  /**
   * A lookup miss already re-read the maps since the last rememberProcess;
   * bounds the re-reads a stream of unknown addresses can cause.
   */
  missRefreshed: boolean;
}

/** The vDSO is a page or two; anything bigger is not what we expect. */
const MAX_VDSO_BYTES = 1024 * 1024;

export class Symbolizer {
  private readonly procRoot: string;
  private readonly binaries: BinaryCache;
  private readonly kernel: KernelSymbols;
  private readonly processes = new Map<number, ProcessRecord>();

  constructor(opts: SymbolizerOptions = {}) {
    this.procRoot = opts.procRoot ?? '/proc';
    this.binaries = new BinaryCache(opts.maxCachedFiles ?? 512);
    this.kernel = new KernelSymbols({ procRoot: this.procRoot });
  }

  /**
   * Captures the process's mappings and loads the symbols of its executable
   * mappings now, while /proc/PID still exists. Cheap when nothing changed.
   */
  rememberProcess(pid: number): void {
    try {
      const record = this.refreshProcess(pid);
      if (record !== null) record.missRefreshed = false;
    } catch {
      // Racing with the process's exit: whatever was remembered before stays.
    }
  }

  /** Drops remembered processes not in livePids; call once their samples are symbolized. */
  forgetProcessesExcept(livePids: ReadonlySet<number>): void {
    for (const pid of [...this.processes.keys()]) {
      if (!livePids.has(pid)) this.processes.delete(pid);
    }
  }

  /** The address is looked up as given (kernel stacks are symbolized at their own addresses). */
  kernelFrame(address: bigint): FrameSpec {
    try {
      return { address, ...this.kernel.resolve(address) };
    } catch {
      return { address, mapping: null, functionName: null };
    }
  }

  /**
   * isLeaf false → symbol looked up at address-1 (return address).
   * FrameSpec.address stays the original address.
   *
   * A return address points just past its call instruction, which may be the
   * first byte of the next function when the call was the caller's last
   * instruction; address-1 is always inside the caller.
   */
  userFrame(pid: number, address: bigint, isLeaf: boolean): FrameSpec {
    try {
      return this.resolveUser(pid, address, isLeaf ? address : address - 1n);
    } catch {
      return { address, mapping: null, functionName: null };
    }
  }

  stats(): { cachedFiles: number; cachedProcesses: number } {
    return { cachedFiles: this.binaries.size, cachedProcesses: this.processes.size };
  }

  private resolveUser(pid: number, address: bigint, lookupAddress: bigint): FrameSpec {
    let record = this.processes.get(pid) ?? this.refreshProcess(pid);
    if (record === null) return { address, mapping: null, functionName: null };
    let mapping = findMapsEntry(record.mappings, address);
    if (mapping === null && !record.missRefreshed) {
      // The process may have mapped something (dlopen) since it was remembered.
      record = this.refreshProcess(pid) ?? record;
      record.missRefreshed = true;
      mapping = findMapsEntry(record.mappings, address);
    }
    let functionName: string | null = null;
    if (mapping?.symbols) {
      functionName = mapping.symbols.functionAtFileOffset(lookupAddress - mapping.start + mapping.entry.offset);
    }
    // JIT code usually sits in anonymous memory, but some runtimes map it from memfds.
    functionName ??= record.perfMap.lookup(lookupAddress);
    return { address, mapping: mapping?.spec ?? null, functionName };
  }

  /** Re-reads /proc/PID/maps; returns the (possibly unchanged) record, or the old one / null if unreadable. */
  private refreshProcess(pid: number): ProcessRecord | null {
    const previous = this.processes.get(pid) ?? null;
    let mapsText: string;
    try {
      mapsText = fs.readFileSync(`${this.procRoot}/${pid}/maps`, 'utf8');
    } catch {
      return previous;
    }
    const mapsDigest = createHash('sha1').update(mapsText).digest('hex');
    if (previous !== null && previous.mapsDigest === mapsDigest) {
      previous.perfMap.refresh();
      return previous;
    }
    const mappings = parseProcMaps(mapsText).map((entry) => this.resolveMapping(pid, entry));
    const perfMap = previous?.perfMap ?? new PerfMap(this.perfMapPath(pid));
    perfMap.refresh();
    const record: ProcessRecord = { mapsDigest, mappings, perfMap, missRefreshed: false };
    this.processes.set(pid, record);
    return record;
  }

  private resolveMapping(pid: number, entry: ProcMapsEntry): ProcessMapping {
    const loaded = entry.perms.includes('x') ? this.loadSymbols(pid, entry) : null;
    const symbols = loaded?.ok ? loaded.symbols : null;
    const spec: MappingSpec = {
      start: entry.start,
      limit: entry.end,
      fileOffset: entry.offset,
      file: entry.path === '' ? '[anon]' : entry.path,
      buildId: symbols?.buildId ?? '',
      hasFunctions: symbols?.hasFunctions ?? false,
    };
    return { start: entry.start, end: entry.end, entry, spec, symbols };
  }

  private loadSymbols(pid: number, entry: ProcMapsEntry): LoadedBinary | null {
    if (entry.path.startsWith('/')) return this.binaries.loadFile(this.mappedFilePath(pid, entry), entry.path);
    if (entry.path === '[vdso]') {
      const size = entry.end - entry.start;
      if (size > BigInt(MAX_VDSO_BYTES)) return null;
      // Same kernel, same vDSO for every 64-bit process: one copy serves all.
      return this.binaries.loadImage(`[vdso]:${size}`, () => readProcessMemory(pid, entry.start, Number(size), this.procRoot));
    }
    return null;
  }

  /**
   * Through /proc/PID/root so files inside containers resolve; through
   * map_files when the file was deleted or replaced after mapping (the path
   * then names a different file, or none).
   */
  private mappedFilePath(pid: number, entry: ProcMapsEntry): string {
    const viaRoot = `${this.procRoot}/${pid}/root${entry.path}`;
    if (!entry.deleted) {
      try {
        if (fs.statSync(viaRoot, { bigint: true }).ino === entry.inode) return viaRoot;
      } catch {
        // fall through to map_files
      }
    }
    return `${this.procRoot}/${pid}/map_files/${mapFilesName(entry)}`;
  }

  /** The runtime writes the map into its own /tmp under its own (namespace) pid. */
  private perfMapPath(pid: number): string {
    let namespacePid = pid;
    try {
      const status = fs.readFileSync(`${this.procRoot}/${pid}/status`, 'utf8');
      const nspid = /^NSpid:\s*(.*)$/m.exec(status)?.[1].trim().split(/\s+/).pop();
      if (nspid !== undefined && /^\d+$/.test(nspid)) namespacePid = Number(nspid);
    } catch {
      // keep the host pid
    }
    return `${this.procRoot}/${pid}/root/tmp/perf-${namespacePid}.map`;
  }
}
