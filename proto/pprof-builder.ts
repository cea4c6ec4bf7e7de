// Builds a pprof Profile with every table interned: strings, mappings,
// functions and locations are stored once, identical samples are summed.
import type { Label, Location, Mapping, Profile, PprofFunction, Sample, ValueType } from './pprof.js';

export interface MappingSpec {
  start: bigint;
  limit: bigint;
  fileOffset: bigint;
  file: string;
  buildId: string;
  hasFunctions: boolean;
}

export interface FrameSpec {
  address: bigint;
  /** null: the address lies in no known mapping. */
  mapping: MappingSpec | null;
  /** null: the frame could not be named; pprof then shows the address. */
  functionName: string | null;
  /** The symbol as the binary has it, when functionName is its demangled form; else functionName. */
  systemName?: string;
  fileName?: string;
}

export type LabelSpec = { key: string; str: string } | { key: string; num: number; unit?: string };

export interface ProfileHeader {
  sampleTypes: { type: string; unit: string }[];
  periodType: { type: string; unit: string };
  period: number;
  timeNanos: bigint;
  durationNanos: bigint;
}

export class ProfileBuilder {
  private readonly strings: string[] = [''];
  private readonly stringIndex = new Map<string, number>([['', 0]]);
  private readonly mappings: Mapping[] = [];
  private readonly mappingIndex = new Map<string, number>();
  private readonly functions: PprofFunction[] = [];
  private readonly functionIndex = new Map<string, number>();
  private readonly locations: Location[] = [];
  private readonly locationIndex = new Map<string, number>();
  private readonly samples: Sample[] = [];
  private readonly sampleIndex = new Map<string, Sample>();
  private readonly sampleTypes: ValueType[];
  private readonly periodType: ValueType;

  constructor(private readonly header: ProfileHeader) {
    this.sampleTypes = header.sampleTypes.map((t) => ({ type: this.string(t.type), unit: this.string(t.unit) }));
    this.periodType = { type: this.string(header.periodType.type), unit: this.string(header.periodType.unit) };
  }

  string(s: string): number {
    let i = this.stringIndex.get(s);
    if (i === undefined) {
      i = this.strings.length;
      this.strings.push(s);
      this.stringIndex.set(s, i);
    }
    return i;
  }

  mapping(spec: MappingSpec): number {
    const key = `${spec.file}\0${spec.buildId}\0${spec.start}\0${spec.limit}\0${spec.fileOffset}`;
    let id = this.mappingIndex.get(key);
    if (id === undefined) {
      id = this.mappings.length + 1;
      this.mappings.push({
        id,
        memoryStart: spec.start,
        memoryLimit: spec.limit,
        fileOffset: spec.fileOffset,
        filename: this.string(spec.file),
        buildId: this.string(spec.buildId),
        hasFunctions: spec.hasFunctions,
        hasFilenames: false,
        hasLineNumbers: false,
        hasInlineFrames: false,
      });
      this.mappingIndex.set(key, id);
    }
    return id;
  }

  private functionId(name: string, systemName: string, fileName: string): number {
    const key = `${name}\0${systemName}\0${fileName}`;
    let id = this.functionIndex.get(key);
    if (id === undefined) {
      id = this.functions.length + 1;
      this.functions.push({ id, name: this.string(name), systemName: this.string(systemName), filename: this.string(fileName), startLine: 0 });
      this.functionIndex.set(key, id);
    }
    return id;
  }

  location(frame: FrameSpec): number {
    const mappingId = frame.mapping ? this.mapping(frame.mapping) : 0;
    const key = `${mappingId}\0${frame.address}\0${frame.functionName ?? ''}\0${frame.systemName ?? ''}`;
    let id = this.locationIndex.get(key);
    if (id === undefined) {
      id = this.locations.length + 1;
      const line =
        frame.functionName === null
          ? []
          : [{ functionId: this.functionId(frame.functionName, frame.systemName ?? frame.functionName, frame.fileName ?? ''), line: 0, column: 0 }];
      this.locations.push({ id, mappingId, address: frame.address, line, isFolded: false });
      this.locationIndex.set(key, id);
    }
    return id;
  }

  /** locationIds leaf first. Samples with the same stack and labels are summed. */
  addSample(locationIds: number[], values: number[], labels: LabelSpec[]): void {
    if (values.length !== this.sampleTypes.length) {
      throw new Error(`sample has ${values.length} values, profile has ${this.sampleTypes.length} sample types`);
    }
    const label: Label[] = labels.map((l) =>
      'str' in l
        ? { key: this.string(l.key), str: this.string(l.str), num: 0, numUnit: 0 }
        : { key: this.string(l.key), str: 0, num: l.num, numUnit: l.unit ? this.string(l.unit) : 0 },
    );
    const key = `${locationIds.join(',')}|${label.map((l) => `${l.key}:${l.str}:${l.num}:${l.numUnit}`).join(',')}`;
    const existing = this.sampleIndex.get(key);
    if (existing) {
      for (let i = 0; i < values.length; i++) existing.value[i] = (existing.value[i] ?? 0) + (values[i] ?? 0);
      return;
    }
    const sample: Sample = { locationId: [...locationIds], value: [...values], label };
    this.samples.push(sample);
    this.sampleIndex.set(key, sample);
  }

  get sampleCount(): number {
    return this.samples.length;
  }

  build(): Profile {
    return {
      sampleType: this.sampleTypes,
      sample: this.samples,
      mapping: this.mappings,
      location: this.locations,
      function: this.functions,
      stringTable: this.strings,
      dropFrames: 0,
      keepFrames: 0,
      timeNanos: this.header.timeNanos,
      durationNanos: this.header.durationNanos,
      periodType: this.periodType,
      period: this.header.period,
      comment: [],
      defaultSampleType: 0,
      docUrl: 0,
    };
  }
}

/** The sample types every hotloop profile carries, in this order. */
export const CPU_SAMPLE_TYPES = [
  { type: 'samples', unit: 'count' },
  { type: 'cpu', unit: 'nanoseconds' },
];
export const CPU_PERIOD_TYPE = { type: 'cpu', unit: 'nanoseconds' };

/** Nanoseconds of CPU one sample stands for at a sampling frequency. */
export function periodNanos(frequencyHz: number): number {
  return Math.round(1e9 / frequencyHz);
}
