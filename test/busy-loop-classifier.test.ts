// The classifier on the signal shapes measured from the real workloads in
// test/workloads (numbers from strace/perf stat runs); the end-to-end verdict
// tests run the workloads themselves under the real agent.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { emptySlice } from '../agent/syscall-slice.js';
import { classifyHotProcess, idleVerdict } from '../collector/busy-loop-classifier.js';
import type { ProcessSampleStats } from '../collector/sample-stats.js';
import type { ProcessInfo, ProcessSignals, SyscallSlice } from '../proto/wire.js';

const noSlice: SyscallSlice = emptySlice(1);

function proc(exe: string, slice: Partial<SyscallSlice> | null, extra: Partial<ProcessSignals> = {}): ProcessInfo {
  const syscallSlice = slice ? { ...noSlice, ...slice } : null;
  const signals: ProcessSignals = {
    spinHintShare: 0,
    voluntarySwitchesPerSec: 0,
    involuntarySwitchesPerSec: 10,
    timeslicesPerSec: 10,
    runQueueWaitShare: 0,
    readSyscallsPerSec: 0,
    writeSyscallsPerSec: 0,
    readBytesPerSec: 0,
    writeBytesPerSec: 0,
    syscallRateMeasured: syscallSlice !== null,
    syscallsPerSec: syscallSlice ? syscallSlice.syscalls / syscallSlice.seconds : 0,
    syscallSlice,
    ...extra,
  };
  return { pid: 100, comm: exe.split('/').pop() ?? '', exe, cmdline: exe, cgroup: '', containerId: '', hot: true, cpuCores: 0.98, signals };
}

const spread: ProcessSampleStats = {
  samples: 190,
  leafAddresses90: 40,
  topLeafShare: 0.05,
  syscallShare: 0.02,
  runtimeShare: 0,
  pollWrapperShare: 0,
  topRuntimeFrame: '',
  topRuntimeShare: 0,
};

test('level-triggered always-ready epoll whose read gets EAGAIN is poll-no-progress', () => {
  const v = classifyHotProcess(
    proc('/opt/app/server', { syscalls: 400_000, waitCalls: 200_000, waitImmediate: 199_900, rwCalls: 200_000, eagain: 200_000 }),
    // glibc's epoll_wait wrapper on the stack says "polling", not "a runtime's event loop".
    { ...spread, syscallShare: 0.8, pollWrapperShare: 0.58, topRuntimeFrame: 'epoll_wait', topRuntimeShare: 0.58 },
  );
  assert.equal(v.verdict, 'busy-loop');
  assert.equal(v.kind, 'poll-no-progress');
  assert.ok(v.score > 0.9);
  assert.match(v.evidence, /wait calls 200k\/s, 100% returned immediately.*50% of syscalls returned EAGAIN.*0 B\/s moved/);
});

test('epoll on a hung-up peer whose read returns 0 (EOF, no EAGAIN) is poll-no-progress', () => {
  const v = classifyHotProcess(proc('/opt/app/proxy', { syscalls: 300_000, waitCalls: 150_000, waitImmediate: 150_000, rwCalls: 150_000 }), spread);
  assert.deepEqual([v.verdict, v.kind], ['busy-loop', 'poll-no-progress']);
});

test('zero-timeout poll returning 0 is poll-no-progress in a C program, runtime-spin in node or python', () => {
  const slice = { syscalls: 330_000, waitCalls: 330_000, waitReturnedZero: 330_000, waitImmediate: 330_000, waitZeroTimeout: 330_000 };
  assert.equal(classifyHotProcess(proc('/usr/local/bin/poller', slice), spread).kind, 'poll-no-progress');
  const python = classifyHotProcess(proc('/usr/bin/python3.11', slice), spread);
  assert.deepEqual([python.verdict, python.kind], ['busy-loop', 'runtime-spin']);
  assert.match(python.evidence, /event loop re-schedules itself \(python3\.11 runtime\)/);
});

test('node setImmediate spin: epoll_pwait 700k/s returning 0 plus eventfd wake-ups is runtime-spin by its frames', () => {
  const v = classifyHotProcess(
    proc('/usr/local/bin/node', { syscalls: 700_870, waitCalls: 700_000, waitReturnedZero: 700_000, waitImmediate: 700_000, waitZeroTimeout: 700_000, rwCalls: 580, rwMovedCalls: 580, rwBytes: 4640 }),
    { ...spread, runtimeShare: 0.71, topRuntimeFrame: 'uv__io_poll', topRuntimeShare: 0.71 },
  );
  assert.deepEqual([v.verdict, v.kind], ['busy-loop', 'runtime-spin']);
  assert.match(v.evidence, /71% in uv__io_poll/);
  assert.ok(v.score > 0.9, `its eventfd wake-ups move bytes but are 0.1% of its syscalls: score ${v.score}`);
});

test('a busy node http server (zero-timeout waits that return events, reads and writes moving bytes) is working/io', () => {
  const v = classifyHotProcess(
    proc('/usr/local/bin/node', { syscalls: 43_000, waitCalls: 4_700, waitZeroTimeout: 4_700, waitImmediate: 4_700, rwCalls: 38_000, rwMovedCalls: 38_000, rwBytes: 5_000_000 }),
    { ...spread, runtimeShare: 0.3, topRuntimeFrame: 'uv__io_poll', topRuntimeShare: 0.3 },
  );
  assert.deepEqual([v.verdict, v.kind], ['working', 'io']);
});

test('non-blocking recv returning EAGAIN with no wait call is eagain-spin', () => {
  const v = classifyHotProcess(proc('/opt/app/consumer', { syscalls: 900_000, rwCalls: 900_000, eagain: 900_000 }), spread);
  assert.deepEqual([v.verdict, v.kind], ['busy-loop', 'eagain-spin']);
});

test('sched_yield loop is yield-spin; futex returning EAGAIN at once is futex-spin', () => {
  assert.equal(classifyHotProcess(proc('/opt/app/worker', { syscalls: 1_200_000, schedYield: 1_200_000 }), spread).kind, 'yield-spin');
  const f = classifyHotProcess(proc('/opt/app/worker', { syscalls: 800_000, futexCalls: 800_000, futexEagain: 800_000 }), spread);
  assert.deepEqual([f.verdict, f.kind], ['busy-loop', 'futex-spin']);
  assert.match(f.evidence, /100% returned EAGAIN at once/);
});

test('no syscalls: samples on a pause instruction are user-spin; concentrated or spread compute is not', () => {
  const spin = classifyHotProcess(proc('/opt/app/lock', { syscalls: 3 }, { spinHintShare: 0.97 }), { ...spread, leafAddresses90: 1, topLeafShare: 1 });
  assert.deepEqual([spin.verdict, spin.kind], ['busy-loop', 'user-spin']);
  assert.match(spin.evidence, /97% of samples on a spin-wait pause instruction, 1 instruction address\(es\) carry 90% of 190 samples/);
  // Measured on test/workloads/matrix-multiply.c: one stalled load carries 96% of the samples.
  const stalledLoad = classifyHotProcess(proc('/opt/app/matmul', { syscalls: 3 }), { ...spread, leafAddresses90: 1, topLeafShare: 0.96 });
  assert.deepEqual([stalledLoad.verdict, stalledLoad.kind], ['working', 'compute']);
  assert.deepEqual(
    [classifyHotProcess(proc('/opt/app/hash', { syscalls: 40 }), spread).verdict, classifyHotProcess(proc('/opt/app/hash', { syscalls: 40 }), spread).kind],
    ['working', 'compute'],
  );
});

test('copying real bytes at a high syscall rate is working/io', () => {
  const v = classifyHotProcess(proc('/bin/cp', { syscalls: 600_000, rwCalls: 600_000, rwMovedCalls: 600_000, rwBytes: 600_000 * 4096 }), spread);
  assert.deepEqual([v.verdict, v.kind], ['working', 'io']);
  assert.match(v.evidence, /2\.3 GiB\/s moved/);
});

test('without a syscall slice, /proc/PID/io read/write counts that move nothing still flag a spin', () => {
  const v = classifyHotProcess(proc('/opt/app/consumer', null, { readSyscallsPerSec: 500_000, readBytesPerSec: 0 }), undefined);
  assert.deepEqual([v.verdict, v.kind], ['busy-loop', 'eagain-spin']);
  const io = classifyHotProcess(proc('/opt/app/copier', null, { readSyscallsPerSec: 50_000, readBytesPerSec: 200e6 }), undefined);
  assert.deepEqual([io.verdict, io.kind], ['working', 'io']);
});

test('a process under the hot threshold is idle', () => {
  const v = idleVerdict({ ...proc('/usr/sbin/sshd', null), hot: false, cpuCores: 0.01 });
  assert.deepEqual([v.verdict, v.kind], ['idle', '']);
  assert.match(v.evidence, /0\.01 cores, below the hot threshold/);
});
