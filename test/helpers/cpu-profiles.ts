// Small hotloop-shaped CPU profiles for collector tests, and a readable view of
// a profile's samples to assert on.
import { CPU_PERIOD_TYPE, CPU_SAMPLE_TYPES, ProfileBuilder } from '../../proto/pprof-builder.js';
import type { Profile } from '../../proto/pprof.js';

export interface SampleSpec {
  /** Function names, leaf first. */
  stack: string[];
  pid: number;
  comm: string;
  count: number;
}

export const PERIOD_NS = 10_000_000;

const appMapping = { start: 0x400000n, limit: 0x800000n, fileOffset: 0n, file: '/usr/bin/app', buildId: 'b1d', hasFunctions: true };

/** Stable address per function name, so equal names make equal frames across profiles. */
function addressOf(name: string): bigint {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) % 0x3fffff;
  return appMapping.start + BigInt(h);
}

/** A profile as the agent makes one: samples/count + cpu/nanoseconds, labels pid, comm, thread, hot. */
export function cpuProfile(samples: SampleSpec[], timeNanos: bigint, durationNanos: bigint, period = PERIOD_NS): Profile {
  const b = new ProfileBuilder({ sampleTypes: CPU_SAMPLE_TYPES, periodType: CPU_PERIOD_TYPE, period, timeNanos, durationNanos });
  for (const s of samples) {
    const ids = s.stack.map((name) => b.location({ address: addressOf(name), mapping: appMapping, functionName: name }));
    b.addSample(ids, [s.count, s.count * period], [
      { key: 'pid', num: s.pid },
      { key: 'comm', str: s.comm },
      { key: 'thread', num: s.pid },
      { key: 'hot', str: 'true' },
    ]);
  }
  return b.build();
}

/** "pid/comm root;...;leaf" → summed samples/count, independent of table numbering. */
export function stackCounts(p: Profile): Map<string, number> {
  const str = (i: number): string => p.stringTable[i] ?? '';
  const fnName = new Map(p.function.map((f) => [f.id, str(f.name)]));
  const frames = new Map(p.location.map((l) => [l.id, l.line.map((line) => fnName.get(line.functionId) ?? '?')]));
  const out = new Map<string, number>();
  for (const s of p.sample) {
    const label = (key: string): string => {
      const l = s.label.find((x) => str(x.key) === key);
      return l ? (l.str !== 0 ? str(l.str) : String(l.num)) : '';
    };
    const names = s.locationId.flatMap((id) => frames.get(id) ?? ['?']).reverse();
    const key = `${label('pid')}/${label('comm')} ${names.join(';')}`;
    out.set(key, (out.get(key) ?? 0) + (s.value[0] ?? 0));
  }
  return out;
}
