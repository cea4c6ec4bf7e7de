// A column of 64-bit addresses kept as two 32-bit halves in typed arrays.
// Symbol tables hold 100k+ addresses: this costs 8 bytes each with no object
// behind it, and comparing two entries allocates nothing (every read from a
// BigUint64Array would create a fresh bigint).

const HALF = 2 ** 32;
const MAX_HALF = HALF - 1;
const MAX_ADDRESS = (1n << 64n) - 1n;

/** a < b, for addresses given as halves. */
export function lessThan(aHi: number, aLo: number, bHi: number, bLo: number): boolean {
  return aHi < bHi || (aHi === bHi && aLo < bLo);
}

export class AddressColumn {
  hi: Uint32Array;
  lo: Uint32Array;
  length: number;

  /** length addresses, all 0; push appends after them, growing past capacity. */
  constructor(length = 0, capacity = length) {
    this.hi = new Uint32Array(Math.max(length, capacity, 16));
    this.lo = new Uint32Array(this.hi.length);
    this.length = length;
  }

  get(i: number): bigint {
    return (BigInt(this.hi[i]) << 32n) | BigInt(this.lo[i]);
  }

  set(i: number, hi: number, lo: number): void {
    this.hi[i] = hi;
    this.lo[i] = lo;
  }

  /** Values past the top of the address space (an end computed as start + size) are cut to it. */
  setBigint(i: number, value: bigint): void {
    const v = value > MAX_ADDRESS ? MAX_ADDRESS : value;
    this.set(i, Number(v >> 32n), Number(v & 0xffffffffn));
  }

  /** Sets entry i to a + b, cut to the top of the address space. */
  setSum(i: number, aHi: number, aLo: number, bHi: number, bLo: number): void {
    let lo = aLo + bLo;
    let hi = aHi + bHi;
    if (lo >= HALF) {
      lo -= HALF;
      hi += 1;
    }
    if (hi >= HALF) this.set(i, MAX_HALF, MAX_HALF);
    else this.set(i, hi, lo);
  }

  push(hi: number, lo: number): void {
    if (this.length === this.hi.length) this.resize(Math.max(this.length * 2, 16));
    this.set(this.length++, hi, lo);
  }

  pushBigint(value: bigint): void {
    this.push(0, 0);
    this.setBigint(this.length - 1, value);
  }

  /** Orders entries i and j by address. */
  compare(i: number, j: number): number {
    return this.hi[i] - this.hi[j] || this.lo[i] - this.lo[j];
  }

  /** Releases spare capacity once the column has stopped growing, unless too little to be worth a copy. */
  trim(): void {
    if (this.hi.length - this.length > this.hi.length / 8) this.resize(this.length);
  }

  private resize(capacity: number): void {
    const hi = new Uint32Array(capacity);
    const lo = new Uint32Array(capacity);
    hi.set(this.hi.subarray(0, this.length));
    lo.set(this.lo.subarray(0, this.length));
    this.hi = hi;
    this.lo = lo;
  }
}
