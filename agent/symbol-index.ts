// Address → symbol lookup shared by the ELF, kallsyms and perf-map readers.
// Symbol ranges may overlap (nested functions, aliases, JIT code regions that
// were reused); building flattens them once into disjoint segments so that a
// lookup is a single binary search.

export interface SymbolRange<T> {
  start: bigint;
  /** Exclusive. */
  end: bigint;
  value: T;
  /** Lower wins where ranges overlap. */
  rank: number;
}

export interface SymbolHit<T> {
  start: bigint;
  end: bigint;
  value: T;
}

function compareBigints(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export class SymbolIndex<T> {
  private constructor(
    private readonly starts: bigint[],
    private readonly ends: bigint[],
    private readonly owners: SymbolRange<T>[],
  ) {}

  static build<T>(ranges: readonly SymbolRange<T>[]): SymbolIndex<T> {
    const sorted = ranges.filter((r) => r.end > r.start).sort((a, b) => compareBigints(a.start, b.start));
    const boundaries = new Set<bigint>();
    for (const r of sorted) {
      boundaries.add(r.start);
      boundaries.add(r.end);
    }
    const points = [...boundaries].sort(compareBigints);

    const starts: bigint[] = [];
    const ends: bigint[] = [];
    const owners: SymbolRange<T>[] = [];
    // Sweep the elementary intervals between boundaries, keeping the ranges
    // that cover the current point. Overlap is rare, so the active list stays
    // tiny and a linear scan for the winner is cheaper than a heap.
    let active: SymbolRange<T>[] = [];
    let next = 0;
    for (let p = 0; p + 1 < points.length; p++) {
      const from = points[p];
      const to = points[p + 1];
      active = active.filter((r) => r.end > from);
      while (next < sorted.length && sorted[next].start === from) active.push(sorted[next++]);
      if (active.length === 0) continue;
      let winner = active[0];
      for (const r of active) if (r.rank < winner.rank) winner = r;
      const last = owners.length - 1;
      if (last >= 0 && owners[last] === winner && ends[last] === from) {
        ends[last] = to;
      } else {
        starts.push(from);
        ends.push(to);
        owners.push(winner);
      }
    }
    return new SymbolIndex(starts, ends, owners);
  }

  get size(): number {
    return this.starts.length;
  }

  lookup(address: bigint): SymbolHit<T> | null {
    let lo = 0;
    let hi = this.starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.starts[mid] <= address) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    if (found < 0 || address >= this.ends[found]) return null;
    const owner = this.owners[found];
    return { start: owner.start, end: owner.end, value: owner.value };
  }
}
