// Brendan Gregg's folded stacks ("comm;root;...;leaf count"), the input of flamegraph.pl.
import type { Profile } from '../proto/pprof.js';
import { namedSamples } from './profile-view.js';

export function formatFolded(profile: Profile): string {
  const totals = new Map<string, number>();
  for (const s of namedSamples(profile)) {
    // The process name as root frame, as stackcollapse-perf does, keeps a host-wide graph readable.
    const comm = s.labels.get('comm');
    const frames = comm ? [comm, ...s.frames] : s.frames;
    // ';' separates frames and the last space separates the count, so neither may appear in a name.
    const key = frames.map((f) => f.replace(/;/g, ':').replace(/\s+/g, '_')).join(';');
    totals.set(key, (totals.get(key) ?? 0) + s.value);
  }
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([stack, n]) => `${stack} ${n}\n`)
    .join('');
}
