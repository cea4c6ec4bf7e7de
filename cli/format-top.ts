// The hottest functions, like `pprof -top`: flat and cumulative samples per function.
import type { Profile } from '../proto/pprof.js';
import { namedSamples } from './profile-view.js';

export interface TopRow {
  name: string;
  flat: number;
  cum: number;
}

export function topFunctions(profile: Profile): { rows: TopRow[]; total: number } {
  const flat = new Map<string, number>();
  const cum = new Map<string, number>();
  let total = 0;
  for (const s of namedSamples(profile)) {
    total += s.value;
    const leaf = s.frames[s.frames.length - 1];
    if (leaf !== undefined) flat.set(leaf, (flat.get(leaf) ?? 0) + s.value);
    // A recursive function counts once per sample in cum.
    for (const name of new Set(s.frames)) cum.set(name, (cum.get(name) ?? 0) + s.value);
  }
  const rows = [...cum.keys()].map((name) => ({ name, flat: flat.get(name) ?? 0, cum: cum.get(name) ?? 0 }));
  rows.sort((a, b) => b.flat - a.flat || b.cum - a.cum || a.name.localeCompare(b.name));
  return { rows, total };
}

export function formatTop(profile: Profile, limit: number): string {
  const { rows, total } = topFunctions(profile);
  const pct = (n: number): string => (total > 0 ? ((100 * n) / total).toFixed(2) : '0.00') + '%';
  const lines = [`Showing top ${Math.min(limit, rows.length)} of ${rows.length} functions, ${total} samples total`];
  lines.push(`${'flat'.padStart(8)} ${'flat%'.padStart(7)} ${'cum'.padStart(8)} ${'cum%'.padStart(7)}  function`);
  for (const r of rows.slice(0, limit)) {
    lines.push(`${String(r.flat).padStart(8)} ${pct(r.flat).padStart(7)} ${String(r.cum).padStart(8)} ${pct(r.cum).padStart(7)}  ${r.name}`);
  }
  return lines.join('\n') + '\n';
}
