// The pprof Profile as typed data, and its gzipped wire form.
import { gunzipSync, gzipSync } from 'node:zlib';
import { codecFor, DecodeError } from './codec.js';

export interface ValueType {
  type: number;
  unit: number;
}

export interface Label {
  key: number;
  str: number;
  num: number;
  numUnit: number;
}

export interface Sample {
  /** locationId[0] is the leaf. */
  locationId: number[];
  value: number[];
  label: Label[];
}

export interface Mapping {
  id: number;
  memoryStart: bigint;
  memoryLimit: bigint;
  fileOffset: bigint;
  filename: number;
  buildId: number;
  hasFunctions: boolean;
  hasFilenames: boolean;
  hasLineNumbers: boolean;
  hasInlineFrames: boolean;
}

export interface Line {
  functionId: number;
  line: number;
  column: number;
}

export interface Location {
  id: number;
  mappingId: number;
  address: bigint;
  line: Line[];
  isFolded: boolean;
}

export interface PprofFunction {
  id: number;
  name: number;
  systemName: number;
  filename: number;
  startLine: number;
}

export interface Profile {
  sampleType: ValueType[];
  sample: Sample[];
  mapping: Mapping[];
  location: Location[];
  function: PprofFunction[];
  /** stringTable[0] is always "". */
  stringTable: string[];
  dropFrames: number;
  keepFrames: number;
  timeNanos: bigint;
  durationNanos: bigint;
  periodType: ValueType | null;
  period: number;
  comment: number[];
  defaultSampleType: number;
  docUrl: number;
}

const profileCodec = codecFor<Profile>(
  'perftools.profiles.Profile',
  new Set(['memoryStart', 'memoryLimit', 'fileOffset', 'address', 'timeNanos', 'durationNanos']),
);

export function encodeProfile(profile: Profile): Buffer {
  return profileCodec.encode(profile);
}

export function encodeProfileGz(profile: Profile): Buffer {
  return gzipSync(encodeProfile(profile));
}

/**
 * Accepts gzipped or raw bytes, as pprof readers do; throws DecodeError on
 * garbage, or on a profile over `maxRawBytes` unzipped (a gzip bomb stops there).
 */
export function decodeProfile(bytes: Uint8Array, maxRawBytes = Infinity): Profile {
  let raw: Uint8Array = bytes;
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      raw = gunzipSync(bytes, Number.isFinite(maxRawBytes) ? { maxOutputLength: maxRawBytes } : {});
    } catch (e) {
      const tooLarge = e instanceof RangeError && (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
      throw new DecodeError('perftools.profiles.Profile (gzip)', tooLarge ? new Error(`unzips to more than ${maxRawBytes} bytes`) : e);
    }
  }
  if (raw.length > maxRawBytes) throw new DecodeError('perftools.profiles.Profile', new Error(`${raw.length} bytes is more than ${maxRawBytes}`));
  const profile = profileCodec.decode(raw);
  validateProfile(profile);
  return profile;
}

/** Checks the cross-references a reader relies on, so later code can index without guarding. */
export function validateProfile(p: Profile): void {
  const fail = (why: string): never => {
    throw new DecodeError('perftools.profiles.Profile', new Error(why));
  };
  if (p.stringTable.length === 0 || p.stringTable[0] !== '') fail('string_table[0] must be ""');
  const str = (i: number, what: string): void => {
    if (!Number.isInteger(i) || i < 0 || i >= p.stringTable.length) fail(`${what} string index ${i} out of range`);
  };
  for (const vt of p.sampleType) {
    str(vt.type, 'sample_type.type');
    str(vt.unit, 'sample_type.unit');
  }
  const fnIds = new Set<number>();
  for (const f of p.function) {
    if (f.id === 0) fail('function id 0');
    str(f.name, 'function.name');
    str(f.systemName, 'function.system_name');
    str(f.filename, 'function.filename');
    fnIds.add(f.id);
  }
  const mapIds = new Set<number>();
  for (const m of p.mapping) {
    if (m.id === 0) fail('mapping id 0');
    str(m.filename, 'mapping.filename');
    str(m.buildId, 'mapping.build_id');
    mapIds.add(m.id);
  }
  const locIds = new Set<number>();
  for (const l of p.location) {
    if (l.id === 0) fail('location id 0');
    if (l.mappingId !== 0 && !mapIds.has(l.mappingId)) fail(`location ${l.id} names unknown mapping ${l.mappingId}`);
    for (const line of l.line) if (!fnIds.has(line.functionId)) fail(`location ${l.id} names unknown function ${line.functionId}`);
    locIds.add(l.id);
  }
  for (const s of p.sample) {
    if (s.value.length !== p.sampleType.length) fail('sample value count differs from sample_type count');
    for (const id of s.locationId) if (!locIds.has(id)) fail(`sample names unknown location ${id}`);
    for (const lb of s.label) {
      str(lb.key, 'label.key');
      str(lb.str, 'label.str');
      str(lb.numUnit, 'label.num_unit');
    }
  }
}
