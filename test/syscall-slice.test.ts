// The bpftrace syscall slice for real: one slice over four real workloads
// classifies each one's syscall returns as its pathology predicts; a missing,
// failing or babbling bpftrace yields no slice and a reason, never a throw.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SyscallSlice } from '../proto/wire.js';
import { clockTicksPerSecond } from '../agent/libc.js';
import { parseSliceOutput, sliceArguments, SyscallSliceRun, type SyscallSliceOptions } from '../agent/syscall-slice.js';
import { stopProcess, tempDir } from './helpers/processes.js';
import { launchWorkload, WORKLOADS } from './helpers/workloads.js';
import { mountTracefs } from './helpers/tracing.js';

before(() => mountTracefs());

const TICKS = clockTicksPerSecond();
const workload = (name: string) => {
  const w = WORKLOADS.find((x) => x.name === name);
  assert.ok(w, name);
  return w;
};
const share = (part: number, whole: number): number => (whole > 0 ? part / whole : 0);
const show = (s: SyscallSlice | undefined): string => JSON.stringify(s);
const runSlice = (opts: SyscallSliceOptions) => new SyscallSliceRun(opts).outcome;

describe('one slice over four real workloads', { timeout: 120_000 }, () => {
  const names = ['eagain-recv-spin', 'sched-yield-spin', 'poll-zero-timeout', 'devzero-copy'];
  const running = new Map<string, ChildProcess>();
  let slices = new Map<number, SyscallSlice>();
  let childCpuSeconds = 0;
  const sliceOf = (name: string): SyscallSlice | undefined => slices.get(running.get(name)?.pid ?? 0);

  before(async () => {
    for (const name of names) running.set(name, await launchWorkload(workload(name)));
    await sleep(500); // past start-up, into each loop
    const outcome = await runSlice({ pids: [...running.values()].map((c) => c.pid!), seconds: 1, clockTicksPerSecond: TICKS });
    assert.ok(outcome.ok, outcome.ok ? '' : outcome.reason);
    slices = outcome.slices;
    childCpuSeconds = outcome.childCpuSeconds;
  });

  after(async () => {
    await Promise.all([...running.values()].map((c) => stopProcess(c, 2000)));
  });

  it('traces each pid for about the requested second and counts its syscalls', () => {
    assert.equal(slices.size, names.length);
    for (const name of names) {
      const s = sliceOf(name);
      assert.ok(s && s.seconds >= 1 && s.seconds < 5, `${name}: ${show(s)}`);
      // Not thousands for all: sched_yield really yields while other spinners wait for one of the two cores.
      assert.ok(s.syscalls > 100, `${name} makes syscalls in a loop: ${show(s)}`);
    }
    console.log(`bpftrace slice child CPU: ${childCpuSeconds.toFixed(2)} s`);
    assert.ok(childCpuSeconds > 0, 'the child CPU was read');
  });

  it('eagain-recv-spin: EAGAIN dominates, from recv calls that move nothing', () => {
    const s = sliceOf('eagain-recv-spin')!;
    assert.ok(share(s.eagain, s.syscalls) > 0.9, show(s));
    assert.ok(share(s.rwCalls, s.syscalls) > 0.9, `recvfrom is a read/write call: ${show(s)}`);
    assert.equal(s.rwMovedCalls, 0, show(s));
    assert.equal(s.waitCalls, 0, show(s));
  });

  it('sched-yield-spin: sched_yield dominates', () => {
    const s = sliceOf('sched-yield-spin')!;
    assert.ok(share(s.schedYield, s.syscalls) > 0.9, show(s));
    assert.equal(s.eagain, 0, show(s));
  });

  it('poll-zero-timeout: wait calls with timeout 0 return 0 at once', () => {
    const s = sliceOf('poll-zero-timeout')!;
    assert.ok(share(s.waitCalls, s.syscalls) > 0.9, show(s));
    assert.ok(share(s.waitReturnedZero, s.waitCalls) > 0.99, show(s));
    assert.ok(share(s.waitZeroTimeout, s.waitCalls) > 0.99, show(s));
    assert.ok(share(s.waitImmediate, s.waitCalls) > 0.9, show(s));
  });

  it('devzero-copy: reads and writes move 4 KiB each', () => {
    const s = sliceOf('devzero-copy')!;
    assert.ok(share(s.rwCalls, s.syscalls) > 0.9, show(s));
    assert.ok(share(s.rwMovedCalls, s.rwCalls) > 0.99, show(s));
    assert.equal(s.rwBytes, 4096 * s.rwMovedCalls, show(s));
    assert.equal(s.eagain, 0, show(s));
  });
});

test('a pid that exits during the slice still gets a (partial) slice, and the run succeeds', async () => {
  const child = await launchWorkload(workload('sched-yield-spin'));
  const ended = sleep(1000).then(() => stopProcess(child, 2000));
  const outcome = await runSlice({ pids: [child.pid!], seconds: 2, clockTicksPerSecond: TICKS });
  await ended;
  assert.ok(outcome.ok, outcome.ok ? '' : outcome.reason);
  assert.ok(outcome.slices.get(child.pid!), 'the traced pid has a slice');
});

describe('failures yield no slice and a reason', () => {
  it('no bpftrace binary', async () => {
    const outcome = await runSlice({ pids: [process.pid], seconds: 1, clockTicksPerSecond: TICKS, bpftracePath: '/nonexistent/bpftrace' });
    assert.equal(outcome.ok, false);
    assert.match(outcome.ok ? '' : outcome.reason, /could not be started/);
  });

  it('bpftrace rejecting its program', async () => {
    const program = path.join(tempDir('slice'), 'broken.bt');
    writeFileSync(program, 'this is not a bpftrace program\n');
    const outcome = await runSlice({ pids: [process.pid], seconds: 1, clockTicksPerSecond: TICKS, programPath: program });
    assert.equal(outcome.ok, false);
    assert.match(outcome.ok ? '' : outcome.reason, /exited with code/);
  });

  it('a program that exits without the readout', async () => {
    const program = path.join(tempDir('slice'), 'babble.bt');
    writeFileSync(program, 'BEGIN { printf("%d %d %d %d %d %d %d %d %d\\n", $1, $2, $3, $4, $5, $6, $7, $8, $9); @rw_calls[$1] = count(); exit(); }\n');
    const outcome = await runSlice({ pids: [process.pid], seconds: 1, clockTicksPerSecond: TICKS, programPath: program });
    assert.equal(outcome.ok, false);
    assert.match(outcome.ok ? '' : outcome.reason, /incomplete readout/);
  });

  it('a slice cancelled while running (the agent stopping)', async () => {
    const run = new SyscallSliceRun({ pids: [process.pid], seconds: 5, clockTicksPerSecond: TICKS });
    setTimeout(() => run.cancel(), 300);
    const outcome = await run.outcome;
    assert.equal(outcome.ok, false);
    assert.match(outcome.ok ? '' : outcome.reason, /cancelled/);
  });

  it('invalid parameters never reach bpftrace', async () => {
    for (const [pids, seconds] of [[[], 1], [[0], 1], [[-5], 1], [[1.5], 1], [[1, 2, 3, 4, 5, 6, 7, 8, 9], 1], [[1], 0], [[1], 11], [[1], 0.5]] as const) {
      assert.throws(() => sliceArguments(pids, seconds), RangeError, `${JSON.stringify(pids)} ${seconds}`);
      const outcome = await runSlice({ pids, seconds, clockTicksPerSecond: TICKS, bpftracePath: '/nonexistent/bpftrace' });
      assert.equal(outcome.ok, false);
      assert.doesNotMatch(outcome.ok ? '' : outcome.reason, /could not be started/, 'rejected before spawning');
    }
    assert.deepEqual(sliceArguments([42, 7], 2), ['42', '7', '0', '0', '0', '0', '0', '0', '2']);
  });
});

describe('parseSliceOutput', () => {
  const good = [
    '{"type": "attached_probes", "data": {"probes": 5}}',
    '{"type": "map", "data": {"@syscalls": {"10": 300, "20": 7}}}',
    '{"type": "map", "data": {"@eagain": {"10": 250}}}',
    '',
    '{"type": "map", "data": {"@rw_bytes": {"20": 8192}}}',
    '{"type": "map", "data": {"@slice_ns": 1500000000}}',
    '',
  ];

  it('fills every traced pid, zeros where a map has no entry', () => {
    const r = parseSliceOutput(good.join('\n'), [10, 20, 30]);
    assert.ok(r.ok);
    assert.equal(r.slices.get(10)?.syscalls, 300);
    assert.equal(r.slices.get(10)?.eagain, 250);
    assert.equal(r.slices.get(10)?.rwBytes, 0);
    assert.equal(r.slices.get(20)?.rwBytes, 8192);
    assert.equal(r.slices.get(30)?.syscalls, 0);
    assert.equal(r.slices.get(30)?.seconds, 1.5);
  });

  const broken: [string, string, RegExp][] = [
    ['no readout end', good.slice(0, 5).join('\n'), /incomplete/],
    ['truncated JSON', `${good.slice(0, 2).join('\n')}\n{"type": "map", "data": {"@eag`, /not JSON/],
    ['plain text', 'Segmentation fault', /not JSON/],
    ['a pid that was not traced', good.join('\n').replace('"20": 7', '"99": 7'), /not traced/],
    ['a negative count', good.join('\n').replace('"10": 250', '"10": -1'), /not a count/],
    ['an unknown map', good.join('\n').replace('@eagain', '@mystery'), /unexpected map/],
    ['a zero slice length', good.join('\n').replace('1500000000', '0'), /slice_ns/],
    ['a JSON array', '[1, 2, 3]', /no "type"/],
  ];
  for (const [what, text, reason] of broken) {
    it(`rejects ${what}`, () => {
      const r = parseSliceOutput(text, [10, 20]);
      assert.equal(r.ok, false);
      assert.match(r.ok ? '' : r.reason, reason);
    });
  }
});
