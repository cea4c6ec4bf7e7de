// Bounded cache of parsed symbol tables, shared by all processes on the host.
// Keyed by (build id, path) so one library mapped by hundreds of processes is
// parsed once; files that fail to parse are cached too, so a corrupt binary
// costs one parse attempt rather than one per frame.
import * as fs from 'node:fs';
import { BinarySymbols } from './binary-symbols.js';
import { ElfFormatError, parseElf, readElfBuildId, readElfFile, type ElfImage } from './elf.js';

export type LoadedBinary = { ok: true; symbols: BinarySymbols } | { ok: false; reason: string };

export class BinaryCache {
  // Map iteration order is insertion order: re-inserting on use makes the first key the least recently used.
  private readonly entries = new Map<string, LoadedBinary>();

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * openPath: where this agent can read the file (e.g. /proc/PID/root/usr/lib/x.so);
   * displayPath: the path the process mapped, part of the cache key.
   */
  loadFile(openPath: string, displayPath: string): LoadedBinary {
    let identity: string;
    try {
      const st = fs.statSync(openPath, { bigint: true });
      // Devices can be mapped too; reading one could block or never end.
      if (!st.isFile()) return { ok: false, reason: 'not a regular file' };
      identity = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
    } catch (err) {
      return { ok: false, reason: describe(err) }; // unreadable now, maybe not later: not cached
    }
    let key: string;
    try {
      const buildId = readElfBuildId(openPath);
      // Without a build id only the file's identity tells two versions apart.
      key = buildId !== '' ? `${buildId}\0${displayPath}` : `\0${displayPath}\0${identity}`;
    } catch (err) {
      if (!(err instanceof ElfFormatError)) return { ok: false, reason: describe(err) };
      key = `\0${displayPath}\0${identity}`;
    }
    return this.remember(key, () => readElfFile(openPath));
  }

  /** For images that exist only in memory, such as the vDSO. */
  loadImage(key: string, readImage: () => Buffer): LoadedBinary {
    return this.remember(`\0\0${key}`, () => parseElf(readImage()));
  }

  private remember(key: string, parse: () => ElfImage): LoadedBinary {
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    let loaded: LoadedBinary;
    try {
      loaded = { ok: true, symbols: new BinarySymbols(parse()) };
    } catch (err) {
      if (!(err instanceof ElfFormatError)) return { ok: false, reason: describe(err) };
      loaded = { ok: false, reason: err.message };
    }
    this.entries.set(key, loaded);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    return loaded;
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
