// The bpftrace output parser against real `bpftrace -f json bpf/oncpu.bt` output
// (see test/fixtures/capture/README.md) and against garbage.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  BpftraceWindowAssembler,
  parseBpftraceLine,
  parseStackKey,
  type BpftraceRecord,
} from '../agent/bpftrace-output-parser.js';
import type { CapturedWindow, RawStack } from '../agent/capture-types.js';

const fixture = (name: string): string => readFileSync(new URL(`../../test/fixtures/capture/${name}`, import.meta.url), 'utf8');
const KERNEL_START = 0xffff_8000_0000_0000n;

// Processes running while the fixtures were recorded.
const COMMA_SPIN_PID = 24947; // comm set to: spin, "q"\
const DD_PID = 24948; // dd if=/dev/zero of=/dev/null bs=1: a syscall per byte
const TEMPL_PID = 25197; // C++ spin_pair<int, long>(std::map<int, long, ...>&)

function windowsOf(text: string): CapturedWindow[] {
  const assembler = new BpftraceWindowAssembler();
  const windows: CapturedWindow[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const record = parseBpftraceLine(line);
    assert.notEqual(record.kind, 'malformed', `real output parsed as malformed: ${line.slice(0, 100)}`);
    const window = assembler.accept(record);
    if (window) windows.push(window);
  }
  return windows;
}

/** The @samples maps of the fixture, decoded by JSON.parse alone. */
function rawSampleMaps(text: string): Record<string, number>[] {
  return text
    .split('\n')
    .filter((l) => l.includes('"@samples"'))
    .map((l) => (JSON.parse(l) as { data: { '@samples': Record<string, number> } }).data['@samples']);
}

const isKernel = (a: bigint): boolean => a >= KERNEL_START;

describe('bpftrace output parser on real output', () => {
  const text = fixture('bpftrace-oncpu.jsonl');
  const windows = windowsOf(text);

  it('yields one window per readout, in time order', () => {
    assert.equal(windows.length, 6);
    for (let i = 1; i < windows.length; i++) assert.ok(windows[i]!.endMonotonicNs > windows[i - 1]!.endMonotonicNs);
    assert.ok(windows[0]!.endMonotonicNs > 0n);
  });

  it('keeps every map entry with its count and frame count', () => {
    const raw = rawSampleMaps(text);
    assert.equal(raw.length, windows.length);
    windows.forEach((w, i) => {
      const entries = Object.entries(raw[i]!);
      assert.equal(w.stacks.length, entries.length);
      assert.equal(sum(w.stacks), entries.reduce((n, [, c]) => n + c, 0));
      const framesInText = entries.reduce((n, [k]) => n + k.split('\n\t').length - 1, 0);
      assert.equal(w.stacks.reduce((n, s) => n + s.kernel.length + s.user.length, 0), framesInText);
    });
  });

  it('splits kernel from user frames', () => {
    const all = windows.flatMap((w) => w.stacks);
    for (const s of all) {
      assert.ok(s.kernel.every(isKernel), `user address in kernel stack of ${s.pid}`);
      assert.ok(s.user.every((a) => !isKernel(a)), `kernel address in user stack of ${s.pid}`);
    }
    const dd = all.filter((s) => s.pid === DD_PID);
    assert.ok(dd.some((s) => s.kernel.length > 0 && s.user.length > 0), 'dd in a syscall: kernel and user frames');
    const kernelThreads = all.filter((s) => s.user.length === 0);
    assert.ok(kernelThreads.length > 0 && kernelThreads.every((s) => s.kernel.length > 0), 'kernel threads: kernel frames only');
    const spin = all.filter((s) => s.pid === COMMA_SPIN_PID);
    assert.ok(spin.length > 0 && spin.every((s) => s.tid === COMMA_SPIN_PID && s.user.length > 0));
  });

  it('reads exact addresses', () => {
    const key = Object.keys(rawSampleMaps(text)[0]!).find((k) => k.startsWith(`${DD_PID},${DD_PID},\n\t`) && k.includes('\n,\n\t'));
    assert.ok(key);
    const hexes = [...key.matchAll(/\n\t([0-9a-f]+) /g)].map((m) => BigInt(`0x${m[1]}`));
    const parsed = parseStackKey(key);
    assert.ok(typeof parsed !== 'string');
    assert.deepEqual([...parsed.kernel, ...parsed.user], hexes);
  });

  it('keeps thread names containing commas, quotes and backslashes', () => {
    for (const w of windows) assert.equal(w.threadNames.get(COMMA_SPIN_PID), 'spin, "q"\\');
    assert.equal(windows[0]!.threadNames.get(DD_PID), 'dd');
  });
});

describe('bpftrace output parser on C++ symbols', () => {
  it('splits keys whose symbols contain commas and spaces', () => {
    const windows = windowsOf(fixture('bpftrace-cxx-symbols.jsonl'));
    const templ = windows.flatMap((w) => w.stacks).filter((s) => s.pid === TEMPL_PID);
    assert.ok(templ.length > 0);
    for (const s of templ) {
      assert.deepEqual(s.kernel, []);
      assert.equal(s.user.length, 2);
      assert.equal(s.user[1], 0x7fe56084524an);
    }
    assert.ok(templ.some((s) => s.user[0] === 0x564e736af271n));
  });
});

describe('parseStackKey', () => {
  it('accepts empty kernel and user stacks', () => {
    assert.deepEqual(parseStackKey('5,6,,'), { pid: 5, tid: 6, kernel: [], user: [] });
    assert.deepEqual(parseStackKey('5,6,\n\tffffffff81000130 entry_SYSCALL_64+118\n,'), {
      pid: 5,
      tid: 6,
      kernel: [0xffffffff81000130n],
      user: [],
    });
    assert.deepEqual(parseStackKey('5,6,,\n\t401000 0x401000 ([unknown])\n'), { pid: 5, tid: 6, kernel: [], user: [0x401000n] });
  });

  it('does not split on commas inside frames', () => {
    const key = '7,8,\n\tffffffff81000130 f+1\n,\n\t55d0 std::map<int, long>::find(int const&, ,)+12 (/bin/a,b)\n\t7f00 g+1 (/lib/x.so)\n';
    assert.deepEqual(parseStackKey(key), { pid: 7, tid: 8, kernel: [0xffffffff81000130n], user: [0x55d0n, 0x7f00n] });
  });

  it('rejects keys that do not have the structure', () => {
    for (const key of [
      '',
      'x,1,,',
      '1,2',
      '1,2,\n\tffff f\n', // kernel stack never followed by the user stack
      '1,2,,\n\tzz not-hex\n',
      '1,2,,\n\t401000 f', // frame line not terminated
      '1,2,,\n\t401000 f\njunk',
      '1,2,,,',
      '99999999999,1,,',
      '1,2,,\n\t1234567890abcdef0 too-long\n',
    ]) {
      assert.equal(typeof parseStackKey(key), 'string', `accepted ${JSON.stringify(key)}`);
    }
  });
});

describe('parseBpftraceLine on garbage', () => {
  const kind = (line: string): BpftraceRecord['kind'] => parseBpftraceLine(line).kind;

  it('reports non-JSON, truncated JSON and wrong shapes as malformed', () => {
    const realMapLine = fixture('bpftrace-oncpu.jsonl').split('\n').find((l) => l.includes('"@samples"'))!;
    for (const line of [
      'Attaching 3 probes...',
      realMapLine.slice(0, Math.floor(realMapLine.length / 2)),
      'null',
      '[1,2]',
      '{"data": {}}',
      '{"type": 3}',
      '{"type": "map", "data": "x"}',
      '{"type": "map", "data": {"@samples": [1, 2]}}',
      '{"type": "map", "data": {"@thread_names": {"12": 5}}}',
      '{"type": "map", "data": {"@thread_names": {"x": "sh"}}}',
      '{"type": "printf", "data": 7}',
      '{"type": "printf", "data": "hotloop_window_end soon\\n"}',
      '{"type": "lost_events", "data": {}}',
    ]) {
      assert.equal(kind(line), 'malformed', line.slice(0, 80));
    }
  });

  it('skips map entries with a bad key or count and keeps the rest', () => {
    const record = parseBpftraceLine(
      JSON.stringify({
        type: 'map',
        data: { '@samples': { '1,1,,\n\t401000 f\n': 3, '1,1,,\n\tnothex f\n': 1, '2,2,,\n\t402000 g\n': '4', '3,3,,': 0 } },
      }),
    );
    assert.equal(record.kind, 'samples');
    if (record.kind !== 'samples') return;
    assert.deepEqual(record.stacks, [{ pid: 1, tid: 1, kernel: [], user: [0x401000n], count: 3 }]);
    assert.equal(record.skippedEntries, 3);
    assert.match(record.firstSkipReason ?? '', /hex address/);
  });

  it('recognises the other record types', () => {
    assert.deepEqual(parseBpftraceLine('{"type": "lost_events", "data": {"events": 3}}'), { kind: 'lost-events', count: 3 });
    assert.deepEqual(parseBpftraceLine('{"type": "attached_probes", "data": {"probes": 3}}'), { kind: 'other', type: 'attached_probes' });
    assert.deepEqual(parseBpftraceLine('{"type": "printf", "data": "hello\\n"}'), { kind: 'other', type: 'printf' });
    assert.deepEqual(parseBpftraceLine('{"type": "map", "data": {"@other": {"1": 2}}}'), { kind: 'other', type: 'map' });
    assert.deepEqual(parseBpftraceLine('{"type": "printf", "data": "hotloop_window_end 1051628845859\\n"}'), {
      kind: 'window-end',
      monotonicNs: 1051628845859n,
    });
  });
});

describe('BpftraceWindowAssembler', () => {
  it('drops a partly read window on reset', () => {
    const assembler = new BpftraceWindowAssembler();
    assembler.accept(parseBpftraceLine('{"type": "map", "data": {"@samples": {"1,1,,\\n\\t401000 f\\n": 3}}}'));
    assembler.accept(parseBpftraceLine('{"type": "map", "data": {"@thread_names": {"1": "sh"}}}'));
    assembler.reset();
    const window = assembler.accept(parseBpftraceLine('{"type": "printf", "data": "hotloop_window_end 42\\n"}'));
    assert.deepEqual(window, { endMonotonicNs: 42n, stacks: [], threadNames: new Map() });
  });
});

function sum(stacks: RawStack[]): number {
  return stacks.reduce((n, s) => n + s.count, 0);
}
