// Symbol names as NUL-terminated bytes in one Buffer, each addressed by its
// offset and decoded to a string only when a lookup hits: a string per
// symbol would cost more than the name itself, and most names are never
// asked for.

export class NameTable {
  private bytes: Buffer = Buffer.alloc(0);
  /** Bytes in use; the name being built ends here. */
  private used = 0;
  private nameStart = 0;
  private offsets: Uint32Array = new Uint32Array(0);
  private count = 0;

  /** Names already laid out in bytes (e.g. an ELF string table): name id starts at offsets[id]. */
  static over(bytes: Buffer, offsets: Uint32Array): NameTable {
    const table = new NameTable();
    table.bytes = bytes;
    table.used = table.nameStart = bytes.length;
    table.offsets = offsets;
    table.count = offsets.length;
    return table;
  }

  get size(): number {
    return this.count;
  }

  name(id: number): string {
    const start = this.offsets[id];
    const end = this.bytes.indexOf(0, start);
    return this.bytes.toString('utf8', start, end < 0 ? this.bytes.length : end);
  }

  /** Appends source[from, to) to the name being built. */
  append(source: Uint8Array, from: number, to: number): void {
    this.reserve(to - from);
    // Names are short: a plain loop beats a native copy call, and allocates no view.
    for (let i = from; i < to; i++) this.bytes[this.used++] = source[i];
  }

  appendString(text: string): void {
    this.reserve(Buffer.byteLength(text));
    this.used += this.bytes.write(text, this.used);
  }

  /** Ends the name being built; returns its id. */
  endName(): number {
    this.reserve(1);
    this.bytes[this.used++] = 0;
    if (this.count === this.offsets.length) {
      const grown = new Uint32Array(Math.max(this.count * 2, 256));
      grown.set(this.offsets);
      this.offsets = grown;
    }
    this.offsets[this.count] = this.nameStart;
    this.nameStart = this.used;
    return this.count++;
  }

  add(name: string): number {
    this.appendString(name);
    return this.endName();
  }

  /** Releases spare capacity once no more names will be added. */
  trim(): void {
    if (this.bytes.length > this.used) this.bytes = Buffer.from(this.bytes.subarray(0, this.used));
    if (this.offsets.length > this.count) this.offsets = this.offsets.slice(0, this.count);
  }

  private reserve(extra: number): void {
    if (this.used + extra <= this.bytes.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.bytes.length * 2, this.used + extra, 4096));
    this.bytes.copy(grown, 0, 0, this.used);
    this.bytes = grown;
  }
}
