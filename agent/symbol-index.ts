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

export function compareBigints(a: bigint, b: bigint): number {
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
    const out = new SymbolIndex<T>([], [], []);
    // Most ranges overlap nothing and are copied straight through; only runs
    // of mutually overlapping ranges need the sweep.
    let clusterStart = 0;
    let clusterEnd = 0n;
    for (let i = 0; i <= sorted.length; i++) {
      if (i < sorted.length && i > clusterStart && sorted[i].start < clusterEnd) {
        if (sorted[i].end > clusterEnd) clusterEnd = sorted[i].end;
        continue;
      }
      if (i - clusterStart === 1) out.append(sorted[clusterStart].start, sorted[clusterStart].end, sorted[clusterStart]);
      else if (i > clusterStart) out.sweep(sorted.slice(clusterStart, i));
      if (i < sorted.length) {
        clusterStart = i;
        clusterEnd = sorted[i].end;
      }
    }
    return out;
  }

  /** Splits overlapping ranges (sorted by start) into disjoint segments, each owned by the lowest-ranked range covering it. */
  private sweep(cluster: SymbolRange<T>[]): void {
    const points = [...new Set(cluster.flatMap((r) => [r.start, r.end]))].sort(compareBigints);
    let active: SymbolRange<T>[] = [];
    let next = 0;
    for (let p = 0; p + 1 < points.length; p++) {
      const from = points[p];
      active = active.filter((r) => r.end > from);
      while (next < cluster.length && cluster[next].start === from) active.push(cluster[next++]);
      if (active.length === 0) continue;
      let winner = active[0];
      for (const r of active) if (r.rank < winner.rank) winner = r;
      this.append(from, points[p + 1], winner);
    }
  }

  private append(from: bigint, to: bigint, owner: SymbolRange<T>): void {
    const last = this.owners.length - 1;
    if (last >= 0 && this.owners[last] === owner && this.ends[last] === from) {
      this.ends[last] = to;
      return;
    }
    this.starts.push(from);
    this.ends.push(to);
    this.owners.push(owner);
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
