// Merges window profiles into one pprof, keeping only the samples of the
// requested process. Re-interning every frame through ProfileBuilder both
// renumbers each window's tables into one and sums samples that became identical.
import { ProfileBuilder, type FrameSpec, type LabelSpec } from '../proto/pprof-builder.js';
import type { Label, Location, Mapping, PprofFunction, Profile, Sample } from '../proto/pprof.js';

export interface SampleFilter {
  /** Only samples whose `pid` num label equals this; 0 = any process. */
  pid: number;
  /** Only samples whose `comm` str label equals this; '' = any process. */
  comm: string;
}

/** Wall-clock span a window covered. */
export interface WindowSpan {
  startNs: bigint;
  endNs: bigint;
}

/** Sum of the samples' first value, which is samples/count in hotloop profiles (CPU_SAMPLE_TYPES). */
export function sampleTotal(samples: readonly Sample[]): number {
  let total = 0;
  for (const s of samples) total += s.value[0] ?? 0;
  return total;
}

/** "type/unit" of every sample type, then the period type: profiles merge only when these agree. */
export function profileShape(p: Profile): string {
  const vt = (t: { type: number; unit: number }): string => `${p.stringTable[t.type]}/${p.stringTable[t.unit]}`;
  return `[${p.sampleType.map(vt).join(', ')}] per ${p.periodType ? vt(p.periodType) : 'nothing'}`;
}

export class ProfileMerger {
  private builder: ProfileBuilder | null = null;
  private shape = '';
  private period = 0;
  private startNs = 0n;
  private endNs = 0n;
  /** Windows that contributed at least one sample. */
  windows = 0;
  /** Total samples/count of the samples kept. */
  samples = 0;

  constructor(private readonly filter: SampleFilter) {}

  /** Adds the samples of one window that pass the filter; throws if its sample types differ from earlier windows'. */
  add(profile: Profile, span: WindowSpan): void {
    const shape = profileShape(profile);
    if (!this.builder) {
      this.shape = shape;
      this.builder = new ProfileBuilder({
        sampleTypes: profile.sampleType.map((t) => ({ type: profile.stringTable[t.type] ?? '', unit: profile.stringTable[t.unit] ?? '' })),
        periodType: {
          type: profile.stringTable[profile.periodType?.type ?? 0] ?? '',
          unit: profile.stringTable[profile.periodType?.unit ?? 0] ?? '',
        },
        period: 0,
        timeNanos: 0n,
        durationNanos: 0n,
      });
    } else if (shape !== this.shape) {
      throw new Error(`cannot merge a profile of ${shape} into one of ${this.shape}`);
    }

    const matching = profile.sample.filter((s) => this.matches(profile, s.label));
    if (matching.length === 0) return;
    const frames = new FrameTranslator(profile, this.builder);
    for (const s of matching) {
      this.builder.addSample(
        s.locationId.flatMap((id) => frames.locationIds(id)),
        s.value,
        s.label.map((l) => labelSpec(profile, l)),
      );
    }

    this.samples += sampleTotal(matching);
    if (this.windows === 0 || span.startNs < this.startNs) this.startNs = span.startNs;
    if (this.windows === 0 || span.endNs > this.endNs) this.endNs = span.endNs;
    // As `go tool pprof -merge` does: the coarsest period of the inputs.
    this.period = Math.max(this.period, profile.period);
    this.windows++;
  }

  /** The merged profile, or null when no window contributed a sample. */
  result(): Profile | null {
    if (!this.builder || this.windows === 0) return null;
    return { ...this.builder.build(), timeNanos: this.startNs, durationNanos: this.endNs - this.startNs, period: this.period };
  }

  private matches(profile: Profile, labels: readonly Label[]): boolean {
    const { pid, comm } = this.filter;
    if (pid !== 0 && !labels.some((l) => profile.stringTable[l.key] === 'pid' && l.num === pid)) return false;
    if (comm !== '' && !labels.some((l) => profile.stringTable[l.key] === 'comm' && profile.stringTable[l.str] === comm)) return false;
    return true;
  }
}

function labelSpec(profile: Profile, l: Label): LabelSpec {
  const key = profile.stringTable[l.key] ?? '';
  if (l.str !== 0) return { key, str: profile.stringTable[l.str] ?? '' };
  return l.numUnit !== 0 ? { key, num: l.num, unit: profile.stringTable[l.numUnit] ?? '' } : { key, num: l.num };
}

/** Maps one source profile's location ids to builder location ids, each location translated once. */
class FrameTranslator {
  private readonly translated = new Map<number, number[]>();
  private readonly locations: Map<number, Location>;
  private readonly mappings: Map<number, Mapping>;
  private readonly functions: Map<number, PprofFunction>;

  constructor(
    private readonly profile: Profile,
    private readonly builder: ProfileBuilder,
  ) {
    this.locations = new Map(profile.location.map((l) => [l.id, l]));
    this.mappings = new Map(profile.mapping.map((m) => [m.id, m]));
    this.functions = new Map(profile.function.map((f) => [f.id, f]));
  }

  /**
   * Leaf first. A location holding inlined frames becomes one builder location
   * per frame at the same address, since ProfileBuilder gives a location one line.
   */
  locationIds(id: number): number[] {
    let ids = this.translated.get(id);
    if (!ids) {
      ids = this.frames(id).map((f) => this.builder.location(f));
      this.translated.set(id, ids);
    }
    return ids;
  }

  private frames(id: number): FrameSpec[] {
    const str = (i: number): string => this.profile.stringTable[i] ?? '';
    // decodeProfile has validated every cross-reference, so these lookups hit.
    const loc = this.locations.get(id);
    if (!loc) throw new Error(`sample names unknown location ${id}`);
    const m = this.mappings.get(loc.mappingId);
    const mapping = m
      ? { start: m.memoryStart, limit: m.memoryLimit, fileOffset: m.fileOffset, file: str(m.filename), buildId: str(m.buildId), hasFunctions: m.hasFunctions }
      : null;
    if (loc.line.length === 0) return [{ address: loc.address, mapping, functionName: null }];
    return loc.line.map((line) => {
      const fn = this.functions.get(line.functionId);
      return { address: loc.address, mapping, functionName: str(fn?.name ?? 0), systemName: str(fn?.systemName ?? fn?.name ?? 0), fileName: str(fn?.filename ?? 0) };
    });
  }
}
