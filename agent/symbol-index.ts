// Address → symbol lookup shared by the ELF, kallsyms and perf-map readers.
// Symbol ranges may overlap (nested functions, aliases, JIT code regions that
// were reused); building flattens them once into disjoint segments so that a
// lookup is a single binary search. Symbols are known by id (their position
// in the caller's columns); the caller keeps names and other per-symbol data.
import { AddressColumn, lessThan } from './address-column.js';

const ADDRESS_LIMIT = 1n << 64n;

export interface SymbolRanges {
  /** Range id's start, for ids 0 .. starts.length-1. */
  starts: AddressColumn;
  /** Exclusive. */
  ends: AddressColumn;
  /** Lower wins where ranges overlap; ties go to the earlier start, then the lower id. */
  rank(id: number): number;
}

/** Ids ordered by start, then by id. */
export function sortByStart(starts: AddressColumn): Uint32Array {
  // LSD radix sort on 16-bit digits: stable, so equal starts stay in id
  // order; linear; and it works in typed arrays, where a comparison sort of
  // 100k+ ids would leave megabytes of garbage on the JS heap.
  const count = starts.length;
  let ids = new Uint32Array(count);
  for (let id = 0; id < count; id++) ids[id] = id;
  let spare = new Uint32Array(count);
  const buckets = new Uint32Array(0x10001);
  for (const [half, shift] of [
    [starts.lo, 0],
    [starts.lo, 16],
    [starts.hi, 0],
    [starts.hi, 16],
  ] as const) {
    if (radixPass(ids, spare, half, shift, buckets)) [ids, spare] = [spare, ids];
  }
  return ids;
}

/** Moves ids into out ordered by one 16-bit digit of key; false if all share it and nothing moved. */
function radixPass(ids: Uint32Array, out: Uint32Array, key: Uint32Array, shift: number, buckets: Uint32Array): boolean {
  const count = ids.length;
  buckets.fill(0);
  for (let i = 0; i < count; i++) buckets[((key[i] >>> shift) & 0xffff) + 1]++;
  // The high half of most tables is constant.
  if (count === 0 || buckets[((key[0] >>> shift) & 0xffff) + 1] === count) return false;
  for (let d = 1; d < buckets.length; d++) buckets[d] += buckets[d - 1];
  for (let i = 0; i < count; i++) {
    const id = ids[i];
    out[buckets[(key[id] >>> shift) & 0xffff]++] = id;
  }
  return true;
}

/** Disjoint segments, appended in address order. */
class Segments {
  readonly starts: AddressColumn;
  readonly ends: AddressColumn;
  owners: Uint32Array;

  /** capacity: the expected number of segments; the columns grow past it if needed. */
  constructor(capacity: number) {
    this.starts = new AddressColumn(0, capacity);
    this.ends = new AddressColumn(0, capacity);
    this.owners = new Uint32Array(this.starts.hi.length);
  }

  append(fromHi: number, fromLo: number, toHi: number, toLo: number, owner: number): void {
    const last = this.starts.length - 1;
    if (last >= 0 && this.owners[last] === owner && this.ends.hi[last] === fromHi && this.ends.lo[last] === fromLo) {
      this.ends.set(last, toHi, toLo);
      return;
    }
    if (last + 1 === this.owners.length) {
      const grown = new Uint32Array(this.owners.length * 2);
      grown.set(this.owners);
      this.owners = grown;
    }
    this.owners[last + 1] = owner;
    this.starts.push(fromHi, fromLo);
    this.ends.push(toHi, toLo);
  }

  appendBigints(from: bigint, to: bigint, owner: number): void {
    this.append(Number(from >> 32n), Number(from & 0xffffffffn), Number(to >> 32n), Number(to & 0xffffffffn), owner);
  }

  /** Aliases (one range under several names) are most clusters: one segment, owned by the lowest rank. */
  private sameExtent({ starts, ends, rank }: SymbolRanges, cluster: Uint32Array): boolean {
    const first = cluster[0];
    let winner = first;
    for (let i = 1; i < cluster.length; i++) {
      const id = cluster[i];
      if (starts.compare(id, first) !== 0 || ends.compare(id, first) !== 0) return false;
      if (rank(id) < rank(winner)) winner = id;
    }
    this.append(starts.hi[first], starts.lo[first], ends.hi[first], ends.lo[first], winner);
    return true;
  }

  /**
   * Splits overlapping ranges (sorted by start) into disjoint segments, each
   * owned by the lowest-ranked range covering it. Clusters are small and
   * rare, so plain bigints keep this readable.
   */
  sweep(ranges: SymbolRanges, cluster: Uint32Array): void {
    if (this.sameExtent(ranges, cluster)) return;
    const members = Array.from(cluster, (id) => ({ id, start: ranges.starts.get(id), end: ranges.ends.get(id), rank: ranges.rank(id) }));
    const points = [...new Set(members.flatMap((r) => [r.start, r.end]))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    let active: typeof members = [];
    let next = 0;
    for (let p = 0; p + 1 < points.length; p++) {
      const from = points[p];
      active = active.filter((r) => r.end > from);
      while (next < members.length && members[next].start === from) active.push(members[next++]);
      if (active.length === 0) continue;
      let winner = active[0];
      for (const r of active) if (r.rank < winner.rank) winner = r;
      this.appendBigints(from, points[p + 1], winner.id);
    }
  }

  /** The segments, with spare capacity released where worth a copy. */
  finish(): { starts: AddressColumn; ends: AddressColumn; owners: Uint32Array } {
    const count = this.starts.length;
    this.starts.trim();
    this.ends.trim();
    const owners = this.owners.length - count > this.owners.length / 8 ? this.owners.slice(0, count) : this.owners.subarray(0, count);
    return { starts: this.starts, ends: this.ends, owners };
  }
}

export class SymbolIndex {
  private readonly starts: AddressColumn;
  private readonly ends: AddressColumn;
  /** Id of the range each segment belongs to. */
  private readonly owners: Uint32Array;

  private constructor(segments: Segments) {
    const { starts, ends, owners } = segments.finish();
    this.starts = starts;
    this.ends = ends;
    this.owners = owners;
  }

  /** order: ids sorted by sortByStart, when the caller has them already. */
  static build(ranges: SymbolRanges, order: Uint32Array = sortByStart(ranges.starts)): SymbolIndex {
    const { starts, ends } = ranges;
    // Empty ranges dropped; a loop rather than filter(), which collects into a JS array first.
    const kept = new Uint32Array(order.length);
    let keptCount = 0;
    for (let i = 0; i < order.length; i++) {
      const id = order[i];
      if (lessThan(starts.hi[id], starts.lo[id], ends.hi[id], ends.lo[id])) kept[keptCount++] = id;
    }
    const sorted = kept.subarray(0, keptCount);
    // Usually one segment per range: overlaps add a few, aliases merge a few.
    const out = new Segments(keptCount);
    // Most ranges overlap nothing and are copied straight through; only runs
    // of mutually overlapping ranges need the sweep.
    let clusterStart = 0;
    let clusterEnd = -1; // id of the range reaching furthest in the current cluster
    for (let i = 0; i <= sorted.length; i++) {
      if (i < sorted.length && i > clusterStart) {
        const id = sorted[i];
        if (lessThan(starts.hi[id], starts.lo[id], ends.hi[clusterEnd], ends.lo[clusterEnd])) {
          if (ends.compare(id, clusterEnd) > 0) clusterEnd = id;
          continue;
        }
      }
      if (i - clusterStart === 1) {
        const id = sorted[clusterStart];
        out.append(starts.hi[id], starts.lo[id], ends.hi[id], ends.lo[id], id);
      } else if (i > clusterStart) {
        out.sweep(ranges, sorted.subarray(clusterStart, i));
      }
      if (i < sorted.length) {
        clusterStart = i;
        clusterEnd = sorted[i];
      }
    }
    return new SymbolIndex(out);
  }

  get size(): number {
    return this.owners.length;
  }

  /** Id of the range covering address, or -1. */
  lookup(address: bigint): number {
    if (address < 0n || address >= ADDRESS_LIMIT) return -1;
    const hi = Number(address >> 32n);
    const lo = Number(address & 0xffffffffn);
    const { starts, ends } = this;
    let low = 0;
    let high = this.owners.length - 1;
    let found = -1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      if (lessThan(hi, lo, starts.hi[mid], starts.lo[mid])) {
        high = mid - 1;
      } else {
        found = mid;
        low = mid + 1;
      }
    }
    if (found < 0 || !lessThan(hi, lo, ends.hi[found], ends.lo[found])) return -1;
    return this.owners[found];
  }
}
