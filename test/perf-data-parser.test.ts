// The perf pipe-stream parser against a real `perf record -o -` stream (see
// test/fixtures/capture/README.md), checked against perf's own raw dump, and
// against damaged streams.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { PerfDataError, PerfPipeParser, type PerfRecord } from '../agent/perf-data-parser.js';

const stream = readFileSync(new URL('../../test/fixtures/capture/perf-record-pipe.data', import.meta.url));
const COMMA_SPIN_PID = 25218; // comm set to: spin, "q"\
const DD_PID = 25219;
const KERNEL_START = 0xffff_8000_0000_0000n;
const CONTEXT_MAX = 0xffff_ffff_ffff_f001n;

type Sample = Extract<PerfRecord, { kind: 'sample' }>;

function parseInChunks(data: Buffer, chunkSize: number): PerfRecord[] {
  const parser = new PerfPipeParser();
  const records: PerfRecord[] = [];
  for (let at = 0; at < data.length; at += chunkSize) records.push(...parser.push(data.subarray(at, at + chunkSize)));
  return records;
}

const samplesOf = (records: PerfRecord[]): Sample[] => records.filter((r): r is Sample => r.kind === 'sample');

/** Samples as `perf script -D` dumps them: pid, tid, time and the raw callchain, context markers included. */
function perfDumpSamples(data: Buffer): { pid: number; tid: number; timeNs: bigint; chain: bigint[] }[] {
  const dump = execFileSync('perf', ['script', '-D', '-i', '-'], { input: data, maxBuffer: 64 * 1024 * 1024, stdio: ['pipe', 'pipe', 'ignore'] }).toString();
  const samples: { pid: number; tid: number; timeNs: bigint; chain: bigint[] }[] = [];
  for (const line of dump.split('\n')) {
    const head = /^\d+ (\d+) 0x[0-9a-f]+ \[0x[0-9a-f]+\]: PERF_RECORD_SAMPLE\([^)]*\): (\d+)\/(\d+): /.exec(line);
    if (head) {
      samples.push({ timeNs: BigInt(head[1]!), pid: Number(head[2]), tid: Number(head[3]), chain: [] });
      continue;
    }
    const frame = /^\.{5}\s+\d+: ([0-9a-f]{16})$/.exec(line);
    if (frame && samples.length > 0) samples[samples.length - 1]!.chain.push(BigInt(`0x${frame[1]}`));
  }
  return samples;
}

function hasPerf(): boolean {
  try {
    execFileSync('perf', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('perf pipe parser on a real stream', () => {
  const records = parseInChunks(stream, stream.length);

  it('gives the same records however the stream is chunked', () => {
    for (const size of [1, 7, 272, 4096]) assert.deepEqual(parseInChunks(stream, size), records, `chunks of ${size} bytes`);
  });

  it('reads every sample as perf itself dumps it', { skip: hasPerf() ? false : 'perf is not installed' }, () => {
    const ours = samplesOf(records);
    const perfs = perfDumpSamples(stream);
    assert.ok(perfs.length > 0);
    assert.equal(ours.length, perfs.length);
    ours.forEach((s, i) => {
      const p = perfs[i]!;
      assert.deepEqual({ pid: s.pid, tid: s.tid, timeNs: s.timeNs }, { pid: p.pid, tid: p.tid, timeNs: p.timeNs });
      assert.deepEqual([...s.kernel, ...s.user], p.chain.filter((ip) => ip < CONTEXT_MAX), `sample ${i}`);
      assert.ok(s.kernel.every((a) => a >= KERNEL_START) && s.user.every((a) => a < KERNEL_START));
    });
  });

  it('finds the workloads with raw user addresses and kernel frames for syscalls', () => {
    const samples = samplesOf(records);
    const spin = samples.filter((s) => s.pid === COMMA_SPIN_PID);
    assert.ok(spin.length > 0 && spin.every((s) => s.user.length > 0));
    // Raw addresses of a PIE binary, not the DSO offsets perf script prints.
    assert.ok(spin.every((s) => s.user[0]! > 0x5000_0000_0000n));
    assert.ok(samples.some((s) => s.pid === DD_PID && s.kernel.length > 0 && s.user.length > 0));
  });

  it('reads thread names, forks and exits', () => {
    // perf announces threads that already ran from /proc/<pid>/status, where the kernel escapes backslashes.
    assert.ok(records.some((r) => r.kind === 'comm' && r.tid === COMMA_SPIN_PID && r.comm === 'spin, "q"\\\\'));
    assert.ok(records.some((r) => r.kind === 'comm' && r.tid === 2 && r.comm === 'kthreadd'));
    assert.ok(records.some((r) => r.kind === 'fork' && r.tid === 3 && r.parentTid === 2));
  });
});

describe('perf pipe parser on damaged streams', () => {
  it('rejects a stream that is not perf pipe data', () => {
    assert.throws(() => new PerfPipeParser().push(Buffer.from('{"type": "map"}\n{"type": "map"}\n')), PerfDataError);
  });

  it('rejects a record shorter than its header', () => {
    const broken = Buffer.concat([stream.subarray(0, 16), Buffer.from([9, 0, 0, 0, 0, 0, 4, 0])]);
    assert.throws(() => new PerfPipeParser().push(broken), /record of 4 bytes/);
  });

  it('rejects a sample before any event description', () => {
    const firstSampleAt = offsetOfFirstRecord(stream, 9);
    const sample = stream.subarray(firstSampleAt, firstSampleAt + stream.readUInt16LE(firstSampleAt + 6));
    assert.throws(() => new PerfPipeParser().push(Buffer.concat([stream.subarray(0, 16), sample])), /sample before any event/);
  });

  it('rejects events sampled without callchains', () => {
    const copy = Buffer.from(stream);
    const attrAt = offsetOfFirstRecord(copy, 64);
    const sampleType = copy.readBigUInt64LE(attrAt + 32);
    copy.writeBigUInt64LE(sampleType & ~(1n << 5n), attrAt + 32);
    assert.throws(() => new PerfPipeParser().push(copy), /without tid, time or callchain/);
  });

  it('rejects a callchain longer than its record', () => {
    const copy = Buffer.from(stream);
    const sampleAt = offsetOfFirstRecord(copy, 9);
    // Make the first sample's callchain claim more entries than its record holds.
    const size = copy.readUInt16LE(sampleAt + 6);
    const nrAt = findCallchainLength(copy.subarray(sampleAt, sampleAt + size));
    copy.writeBigUInt64LE(1000n, sampleAt + nrAt);
    assert.throws(() => new PerfPipeParser().push(copy), /overruns its record/);
  });

  it('waits for the rest of a record cut mid-way', () => {
    const cut = offsetOfFirstRecord(stream, 9) + 20;
    const parser = new PerfPipeParser();
    const before = parser.push(stream.subarray(0, cut));
    assert.ok(parser.started);
    assert.equal(samplesOf(before).length, 0);
    const after = parser.push(stream.subarray(cut));
    assert.deepEqual([...before, ...after], parseInChunks(stream, stream.length));
  });
});

/** Offset of the first record of this type, walking the stream by record sizes. */
function offsetOfFirstRecord(data: Buffer, type: number): number {
  for (let at = 16; at + 8 <= data.length; at += data.readUInt16LE(at + 6)) {
    if (data.readUInt32LE(at) === type) return at;
  }
  throw new Error(`no record of type ${type} in the fixture`);
}

/** Offset of the u64 callchain length in a sample: the one followed by exactly that many u64s up to the end. */
function findCallchainLength(sample: Buffer): number {
  for (let at = 8; at + 8 <= sample.length; at += 8) {
    if (sample.readBigUInt64LE(at) === BigInt((sample.length - at - 8) / 8)) return at;
  }
  throw new Error('no callchain length found');
}
