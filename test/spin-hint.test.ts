import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { RawStack } from '../agent/capture-types.js';
import { readProcessMemory } from '../agent/process-memory.js';
import { spinHintShare } from '../agent/spin-hint.js';
import { parseProcMaps } from '../agent/proc-maps.js';
import { compileC, repoRoot } from './helpers/processes.js';

const stack = (pid: number, leaf: bigint, count: number, inKernel = false): RawStack => ({ pid, tid: pid, kernel: inKernel ? [0xffffffff81000000n] : [], user: [leaf, 0x401000n], count });

test('samples on or right after a pause count; other leaves and kernel samples do not', () => {
  // Memory: a `pause` (f3 90) at 0x1002, a load elsewhere.
  const memory = Buffer.from([0x90, 0x90, 0xf3, 0x90, 0x8b, 0x05, 0x00, 0x00]);
  const read = (_pid: number, address: bigint, length: number): Buffer => memory.subarray(Number(address - 0x1000n), Number(address - 0x1000n) + length);
  const stacks = [stack(9, 0x1004n, 60), stack(9, 0x1002n, 10), stack(9, 0x1006n, 20), stack(9, 0x1004n, 10, true), stack(3, 0x1004n, 99)];
  assert.equal(spinHintShare(9, stacks, read), 0.7);
  assert.equal(spinHintShare(4, stacks, read), 0, 'a pid with no samples');
  assert.equal(spinHintShare(9, stacks, () => { throw new Error('gone'); }), 0, 'unreadable memory is no evidence');
});

test('a real pause-flag spin: the pause instruction is found in the live process', () => {
  const bin = compileC(readFileSync(path.join(repoRoot, 'test/workloads/pause-flag-spin.c'), 'utf8'), 'pause-spin');
  const child = spawn(bin, [], { stdio: 'ignore' });
  try {
    const pid = child.pid ?? 0;
    const image = readFileSync(bin);
    const text = parseProcMaps(readFileSync(`/proc/${pid}/maps`, 'utf8')).find((m) => m.path === bin && m.perms.includes('x'));
    assert.ok(text, 'the binary is mapped executable');
    // Every `pause` in the mapped text; the spin loop has one.
    const pauses: bigint[] = [];
    const from = Number(text.offset);
    for (let i = from; i < Math.min(image.length, from + Number(text.end - text.start)) - 1; i++) {
      if (image[i] === 0xf3 && image[i + 1] === 0x90) pauses.push(text.start + BigInt(i - from));
    }
    assert.ok(pauses.length > 0, 'gcc emitted a pause for __builtin_ia32_pause');
    const afterPause = (pauses[0] as bigint) + 2n;
    assert.equal(spinHintShare(pid, [stack(pid, afterPause, 50)], readProcessMemory), 1);
    assert.equal(spinHintShare(pid, [stack(pid, text.start + 0x10n, 50)], readProcessMemory), 0);
  } finally {
    child.kill('SIGKILL');
  }
});
