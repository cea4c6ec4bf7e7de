// Reads a pprof Profile as named stacks: the one place that turns ids and
// string indices into frame names for the text formats.
import type { Profile } from '../proto/pprof.js';

export interface NamedSample {
  /** Root first. */
  frames: string[];
  value: number;
  labels: Map<string, string>;
}

/** Frame names of each location, leaf first for inlined lines; unnamed frames show module+offset. */
function locationNames(p: Profile): Map<number, string[]> {
  const str = (i: number): string => p.stringTable[i] ?? '';
  const fnName = new Map(p.function.map((f) => [f.id, str(f.name)]));
  const mappings = new Map(p.mapping.map((m) => [m.id, m]));
  const names = new Map<number, string[]>();
  for (const loc of p.location) {
    const named = loc.line.map((l) => fnName.get(l.functionId) ?? '').filter((n) => n.length > 0);
    if (named.length > 0) {
      names.set(loc.id, named);
      continue;
    }
    const m = mappings.get(loc.mappingId);
    if (m) {
      const file = str(m.filename).split('/').pop() || '[unknown]';
      names.set(loc.id, [`${file}+0x${(loc.address - m.memoryStart + m.fileOffset).toString(16)}`]);
    } else {
      names.set(loc.id, [`0x${loc.address.toString(16)}`]);
    }
  }
  return names;
}

/** Samples with root-first frame names; valueIndex picks the sample type (0 = samples). */
export function namedSamples(p: Profile, valueIndex = 0): NamedSample[] {
  const names = locationNames(p);
  const str = (i: number): string => p.stringTable[i] ?? '';
  return p.sample.map((s) => {
    const leafFirst = s.locationId.flatMap((id) => names.get(id) ?? [`location#${id}`]);
    const labels = new Map(s.label.map((l) => [str(l.key), l.str !== 0 ? str(l.str) : String(l.num)]));
    return { frames: leafFirst.reverse(), value: s.value[valueIndex] ?? 0, labels };
  });
}
