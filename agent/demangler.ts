// C++ and Rust symbol names made readable: `_ZN4node11Environment14CheckImmediate...`
// becomes `node::Environment::CheckImmediate(uv_check_s*)`, which is what a
// person reads in a flamegraph and what the collector's runtime-frame patterns
// (node::, v8::internal::, tokio::, mio::) match. binutils' c++filt does the
// work, once per batch of names not seen before; without it names stay mangled.
import { execFileSync } from 'node:child_process';
import type { Logger } from 'pino';

/** Itanium C++ (and Rust legacy) `_Z`, Rust v0 `_R`. */
const MANGLED = /^_[ZR][A-Za-z0-9_]/;
/** Rust legacy names end in a hash segment that only disambiguates. */
const RUST_HASH = /::h[0-9a-f]{16}$/;
const DEFAULT_CACHE_ENTRIES = 100_000;
const C_FILT_TIMEOUT_MS = 10_000;

export interface DemanglerOptions {
  log: Logger;
  command?: string;
  /** Names remembered; beyond this the oldest are forgotten (and demangled again if seen again). */
  cacheEntries?: number;
}

export class Demangler {
  private readonly cache = new Map<string, string>();
  private readonly command: string;
  private readonly cacheEntries: number;
  private unavailable = false;

  constructor(private readonly opts: DemanglerOptions) {
    this.command = opts.command ?? 'c++filt';
    this.cacheEntries = opts.cacheEntries ?? DEFAULT_CACHE_ENTRIES;
  }

  /** Readable names for those of `names` that are mangled and could be demangled; others are absent. */
  demangle(names: Iterable<string>): Map<string, string> {
    const out = new Map<string, string>();
    const misses: string[] = [];
    for (const name of names) {
      if (!MANGLED.test(name) || name.includes('\n')) continue;
      const known = this.cache.get(name);
      if (known !== undefined) {
        if (known !== name) out.set(name, known);
      } else misses.push(name);
    }
    if (misses.length === 0 || this.unavailable) return out;
    const demangled = this.runFilter(misses);
    if (!demangled) return out;
    misses.forEach((name, i) => {
      const readable = (demangled[i] ?? name).replace(RUST_HASH, '');
      this.remember(name, readable);
      if (readable !== name) out.set(name, readable);
    });
    return out;
  }

  /** One line out per line in, in order; undefined if the tool cannot be run. */
  private runFilter(names: string[]): string[] | undefined {
    try {
      const text = execFileSync(this.command, [], { input: names.join('\n') + '\n', encoding: 'utf8', timeout: C_FILT_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 });
      const lines = text.split('\n');
      return lines.length >= names.length ? lines : undefined;
    } catch (err) {
      this.unavailable = true;
      const missing = err instanceof Error && (err as NodeJS.ErrnoException).code === 'ENOENT';
      this.opts.log.warn(
        { command: this.command, err: err instanceof Error ? err.message : String(err) },
        missing ? 'c++filt not found (apt-get install binutils): C++ and Rust function names stay mangled' : 'demangling failed; C++ and Rust function names stay mangled',
      );
      return undefined;
    }
  }

  private remember(name: string, readable: string): void {
    if (this.cache.size >= this.cacheEntries) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(name, readable);
  }
}
