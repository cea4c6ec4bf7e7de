import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleStatsByPid } from '../collector/sample-stats.js';
import { CPU_PERIOD_TYPE, CPU_SAMPLE_TYPES, ProfileBuilder, type MappingSpec } from '../proto/pprof-builder.js';

const app: MappingSpec = { start: 0x400000n, limit: 0x800000n, fileOffset: 0n, file: '/usr/bin/app', buildId: '', hasFunctions: true };

function build(add: (frame: (addr: bigint, name: string) => number, sample: (pid: number, ids: number[], n: number) => void) => void) {
  const b = new ProfileBuilder({ sampleTypes: CPU_SAMPLE_TYPES, periodType: CPU_PERIOD_TYPE, period: 1, timeNanos: 0n, durationNanos: 1n });
  add(
    (address, name) => b.location({ address, mapping: address >= 0xffff800000000000n ? null : app, functionName: name }),
    (pid, ids, n) => b.addSample(ids, [n, n], [{ key: 'pid', num: pid }, { key: 'comm', str: 'x' }]),
  );
  return b.build();
}

test('a spin on one instruction has a tiny leaf footprint; spread work a wide one', () => {
  const p = build((frame, sample) => {
    const main = frame(0x401000n, 'main');
    sample(1, [frame(0x402000n, 'wait_flag'), main], 95);
    sample(1, [frame(0x402004n, 'wait_flag'), main], 5);
    for (let i = 0; i < 50; i++) sample(2, [frame(0x500000n + BigInt(i * 8), 'compress'), main], 2);
  });
  const stats = sampleStatsByPid(p);
  assert.equal(stats.get(1)?.samples, 100);
  assert.equal(stats.get(1)?.leafAddresses90, 1);
  assert.equal(stats.get(1)?.topLeafShare, 0.95);
  assert.equal(stats.get(2)?.leafAddresses90, 45);
});

test('kernel frames count as in-kernel; runtime frames and libc poll wrappers are told apart', () => {
  const p = build((frame, sample) => {
    const entry = frame(0xffffffff81000130n, 'entry_SYSCALL_64');
    const wrapper = frame(0x403000n, 'epoll_wait');
    const loop = frame(0x404000n, 'uv__io_poll');
    const run = frame(0x405000n, 'uv_run');
    sample(7, [entry, wrapper, loop, run], 60);
    sample(7, [frame(0x406000n, 'js_work'), run], 40);
    sample(8, [entry, wrapper, frame(0x407000n, 'main')], 30);
  });
  const node = sampleStatsByPid(p).get(7);
  assert.deepEqual(
    node && { kernel: node.syscallShare, runtime: node.runtimeShare, wrapper: node.pollWrapperShare, top: node.topRuntimeFrame },
    { kernel: 0.6, runtime: 1, wrapper: 0.6, top: 'uv_run' },
  );
  const c = sampleStatsByPid(p).get(8);
  assert.deepEqual(c && { runtime: c.runtimeShare, wrapper: c.pollWrapperShare, top: c.topRuntimeFrame }, { runtime: 0, wrapper: 1, top: 'epoll_wait' });
});
