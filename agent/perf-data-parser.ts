// Parses the stream `perf record -o -` writes (perf.data pipe mode, see
// tools/perf/Documentation/perf.data-file-format.txt and the
// perf_event_open(2) record layouts) into the few records the perf backend
// uses. Reading the binary stream directly keeps callchains as raw addresses
// (perf script prints user frames as DSO offsets) and costs far less CPU than
// running perf script per window.

const PIPE_MAGIC = 0x32454c4946524550n; // "PERFILE2", little-endian
const PIPE_HEADER_SIZE = 16;
const RECORD_HEADER_SIZE = 8;
/** PERF_ATTR_SIZE_VER0: the smallest perf_event_attr perf has ever written. */
const ATTR_SIZE_VER0 = 64;

const RECORD = {
  LOST: 2,
  COMM: 3,
  EXIT: 4,
  FORK: 7,
  SAMPLE: 9,
  LOST_SAMPLES: 13,
  HEADER_ATTR: 64,
} as const;

const SAMPLE = {
  IP: 1n << 0n,
  TID: 1n << 1n,
  TIME: 1n << 2n,
  ADDR: 1n << 3n,
  READ: 1n << 4n,
  CALLCHAIN: 1n << 5n,
  ID: 1n << 6n,
  CPU: 1n << 7n,
  PERIOD: 1n << 8n,
  STREAM_ID: 1n << 9n,
  IDENTIFIER: 1n << 16n,
} as const;

// Callchain entries at or above PERF_CONTEXT_MAX (-4095 as u64) mark where the
// following addresses come from rather than being addresses.
const CONTEXT_MAX = 0xffff_ffff_ffff_f001n;
const CONTEXT_KERNEL = 0xffff_ffff_ffff_ff80n;
const CONTEXT_USER = 0xffff_ffff_ffff_fe00n;
/** x86-64 and arm64 kernels live in the top half of the address space. */
const KERNEL_ADDRESS_START = 0xffff_8000_0000_0000n;

export type PerfRecord =
  | { kind: 'sample'; pid: number; tid: number; timeNs: bigint; kernel: bigint[]; user: bigint[] }
  | { kind: 'comm'; pid: number; tid: number; comm: string }
  /** A new thread or process; it starts with its parent's comm. */
  | { kind: 'fork'; pid: number; tid: number; parentTid: number }
  | { kind: 'exit'; pid: number; tid: number }
  | { kind: 'lost'; count: bigint };

export class PerfDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PerfDataError';
  }
}

export class PerfPipeParser {
  private pending: Buffer = Buffer.alloc(0);
  private headerRead = false;
  private sampleType: bigint | undefined;

  /** Whether the stream header has arrived, i.e. perf is up and writing. */
  get started(): boolean {
    return this.headerRead;
  }

  /** Records completed by this chunk. Throws PerfDataError when the stream is not what perf writes. */
  push(chunk: Buffer): PerfRecord[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const records: PerfRecord[] = [];
    let offset = 0;
    if (!this.headerRead) {
      if (this.pending.length < PIPE_HEADER_SIZE) return records;
      this.readPipeHeader(this.pending);
      offset = PIPE_HEADER_SIZE;
    }
    while (this.pending.length - offset >= RECORD_HEADER_SIZE) {
      const size = this.pending.readUInt16LE(offset + 6);
      if (size < RECORD_HEADER_SIZE) throw new PerfDataError(`record of ${size} bytes at stream offset ${offset}`);
      if (this.pending.length - offset < size) break;
      const record = this.parseRecord(this.pending.subarray(offset, offset + size));
      if (record) records.push(record);
      offset += size;
    }
    this.pending = this.pending.subarray(offset);
    return records;
  }

  private readPipeHeader(buf: Buffer): void {
    const magic = buf.readBigUInt64LE(0);
    if (magic !== PIPE_MAGIC) throw new PerfDataError(`not a perf pipe stream (magic 0x${magic.toString(16)})`);
    const size = buf.readBigUInt64LE(8);
    if (size !== BigInt(PIPE_HEADER_SIZE)) throw new PerfDataError(`unexpected pipe header size ${size}`);
    this.headerRead = true;
  }

  private parseRecord(rec: Buffer): PerfRecord | undefined {
    const type = rec.readUInt32LE(0);
    const reader = new RecordReader(rec, type);
    switch (type) {
      case RECORD.HEADER_ATTR:
        this.readAttr(reader);
        return undefined;
      case RECORD.SAMPLE:
        return this.readSample(reader);
      case RECORD.COMM:
        return { kind: 'comm', pid: reader.u32(8), tid: reader.u32(12), comm: reader.cString(16) };
      case RECORD.FORK:
        return { kind: 'fork', pid: reader.u32(8), tid: reader.u32(16), parentTid: reader.u32(20) };
      case RECORD.EXIT:
        return { kind: 'exit', pid: reader.u32(8), tid: reader.u32(16) };
      case RECORD.LOST:
        return { kind: 'lost', count: reader.u64(16) };
      case RECORD.LOST_SAMPLES:
        return { kind: 'lost', count: reader.u64(8) };
      default:
        return undefined;
    }
  }

  /** Every event perf opens must lay out samples the same way: samples are parsed by that layout. */
  private readAttr(reader: RecordReader): void {
    const attrSize = reader.u32(12);
    if (attrSize < ATTR_SIZE_VER0) throw new PerfDataError(`perf_event_attr of ${attrSize} bytes`);
    const sampleType = reader.u64(8 + 24);
    const required = SAMPLE.TID | SAMPLE.TIME | SAMPLE.CALLCHAIN;
    if ((sampleType & required) !== required) throw new PerfDataError(`events sampled without tid, time or callchain (sample_type 0x${sampleType.toString(16)})`);
    if (sampleType & SAMPLE.READ) throw new PerfDataError('events sampled with PERF_SAMPLE_READ are not supported');
    if (this.sampleType !== undefined && this.sampleType !== sampleType) throw new PerfDataError('events with different sample layouts');
    this.sampleType = sampleType;
  }

  private readSample(reader: RecordReader): PerfRecord {
    const st = this.sampleType;
    if (st === undefined) throw new PerfDataError('sample before any event attributes');
    let at = RECORD_HEADER_SIZE;
    if (st & SAMPLE.IDENTIFIER) at += 8;
    if (st & SAMPLE.IP) at += 8;
    const pid = reader.u32(at);
    const tid = reader.u32(at + 4);
    at += 8;
    const timeNs = reader.u64(at);
    at += 8;
    for (const skipped of [SAMPLE.ADDR, SAMPLE.ID, SAMPLE.STREAM_ID, SAMPLE.CPU, SAMPLE.PERIOD]) {
      if (st & skipped) at += 8;
    }
    const nr = reader.u64(at);
    at += 8;
    if (nr > BigInt((reader.size - at) / 8)) throw new PerfDataError(`callchain of ${nr} entries overruns its record`);
    const { kernel, user } = splitCallchain(reader, at, Number(nr));
    return { kind: 'sample', pid, tid, timeNs, kernel, user };
  }
}

/** Sorts callchain addresses by the context markers perf puts before each part. */
function splitCallchain(reader: RecordReader, at: number, nr: number): { kernel: bigint[]; user: bigint[] } {
  const kernel: bigint[] = [];
  const user: bigint[] = [];
  let context: 'kernel' | 'user' | 'other' | undefined;
  for (let i = 0; i < nr; i++) {
    const ip = reader.u64(at + i * 8);
    if (ip >= CONTEXT_MAX) {
      context = ip === CONTEXT_KERNEL ? 'kernel' : ip === CONTEXT_USER ? 'user' : 'other';
      continue;
    }
    const part = context ?? (ip >= KERNEL_ADDRESS_START ? 'kernel' : 'user');
    if (part === 'kernel') kernel.push(ip);
    else if (part === 'user') user.push(ip);
  }
  return { kernel, user };
}

/** Bounds-checked little-endian reads within one record. */
class RecordReader {
  constructor(
    private readonly rec: Buffer,
    private readonly type: number,
  ) {}

  get size(): number {
    return this.rec.length;
  }

  u32(at: number): number {
    this.need(at, 4);
    return this.rec.readUInt32LE(at);
  }

  u64(at: number): bigint {
    this.need(at, 8);
    return this.rec.readBigUInt64LE(at);
  }

  cString(at: number): string {
    this.need(at, 1);
    const end = this.rec.indexOf(0, at);
    if (end < 0) throw new PerfDataError(`unterminated string in record type ${this.type}`);
    return this.rec.toString('utf8', at, end);
  }

  private need(at: number, bytes: number): void {
    if (at + bytes > this.rec.length) throw new PerfDataError(`record type ${this.type} of ${this.rec.length} bytes is too short`);
  }
}
