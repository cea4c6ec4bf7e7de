// Symbol names packed as NUL-terminated bytes, each found by its offset and
// decoded to a string only when a lookup hits: a string per symbol would cost
// more than the name itself, and most names are never asked for.
//
// The bytes live in fixed-size chunks rather than one buffer grown by
// doubling: growing would copy megabytes and leave the old copies as garbage
// that the GC frees late, which shows up as peak RSS.

const CHUNK_BYTES = 256 * 1024;
const RECENT_SLOTS = 64;

/**
 * The strings of recently decoded names, so a hot function's name is not
 * decoded again for every sample that lands in it; a handful of slots per
 * table, so hundreds of cached tables stay cheap.
 */
export class RecentNames {
  private readonly ids = new Int32Array(RECENT_SLOTS).fill(-1);
  private readonly names: string[] = new Array<string>(RECENT_SLOTS).fill('');

  constructor(private readonly decode: (id: number) => string) {}

  name(id: number): string {
    const slot = id & (RECENT_SLOTS - 1);
    if (this.ids[slot] !== id) {
      this.names[slot] = this.decode(id);
      this.ids[slot] = id;
    }
    return this.names[slot];
  }
}

export class NameTable {
  private readonly chunks: Buffer[] = [];
  private chunk: Buffer = Buffer.alloc(0);
  /** Bytes in use in the current chunk; the name being built ends here. */
  private used = 0;
  private nameStart = 0;
  /** Per name: chunk index * CHUNK_BYTES + start within the chunk. */
  private offsets = new Uint32Array(1024);
  private count = 0;
  private readonly recent = new RecentNames((id) => this.decode(id));

  name(id: number): string {
    return this.recent.name(id);
  }

  private decode(id: number): string {
    const chunk = this.chunks[Math.floor(this.offsets[id] / CHUNK_BYTES)];
    const start = this.offsets[id] % CHUNK_BYTES;
    return chunk.toString('utf8', start, chunk.indexOf(0, start));
  }

  /** Appends source[from, to) to the name being built. */
  append(source: Uint8Array, from: number, to: number): void {
    this.reserve(to - from);
    // Names are short: a plain loop beats a native copy call, and allocates no view.
    for (let i = from; i < to; i++) this.chunk[this.used++] = source[i];
  }

  appendString(text: string): void {
    this.reserve(Buffer.byteLength(text));
    this.used += this.chunk.write(text, this.used);
  }

  /** Ends the name being built; returns its id. */
  endName(): number {
    this.reserve(0);
    this.chunk[this.used++] = 0;
    if (this.count === this.offsets.length) {
      const grown = new Uint32Array(this.count * 2);
      grown.set(this.offsets);
      this.offsets = grown;
    }
    this.offsets[this.count] = (this.chunks.length - 1) * CHUNK_BYTES + this.nameStart;
    this.nameStart = this.used;
    return this.count++;
  }

  add(name: string): number {
    this.appendString(name);
    return this.endName();
  }

  /** Releases most spare capacity once no more names will be added. */
  trim(): void {
    if (this.chunks.length > 0) this.chunk = this.chunks[this.chunks.length - 1] = Buffer.from(this.chunk.subarray(0, this.used));
    if (this.offsets.length - this.count > this.offsets.length / 8) this.offsets = this.offsets.slice(0, this.count);
  }

  /** Makes room for extra more bytes of the current name and its NUL, moving the name to a new chunk if needed. */
  private reserve(extra: number): void {
    // A name longer than a chunk gets a chunk of its own; one starting past CHUNK_BYTES would not fit its offset.
    if (this.used + extra + 1 <= this.chunk.length && this.nameStart < CHUNK_BYTES) return;
    const partial = this.used - this.nameStart;
    const next = Buffer.allocUnsafeSlow(Math.max(CHUNK_BYTES, partial + extra + 1));
    this.chunk.copy(next, 0, this.nameStart, this.used);
    this.chunks.push(next);
    this.chunk = next;
    this.used = partial;
    this.nameStart = 0;
  }
}
