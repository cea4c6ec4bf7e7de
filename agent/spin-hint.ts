// Detects user-space spin-waits from the samples themselves: spin loops
// (spinlocks, Rust's spin_loop, Go's procyield, the JVM's onSpinWait, a
// `while (!flag) pause;`) execute x86's `pause` every iteration, so their hot
// leaf instruction is a `pause` or the one right after it. A tight compute
// loop can be just as concentrated on one instruction (a stalled load), which
// is why concentration alone does not tell a spin from work.
import type { RawStack } from './capture-types.js';

/** x86-64 `pause` (REP NOP). */
const PAUSE = [0xf3, 0x90] as const;
/** Hot leaf addresses inspected per process: together they carry nearly all of a spin's samples. */
const MAX_ADDRESSES = 8;

export type MemoryReader = (pid: number, address: bigint, length: number) => Buffer;

function isPauseAt(bytes: Buffer, offset: number): boolean {
  return bytes[offset] === PAUSE[0] && bytes[offset + 1] === PAUSE[1];
}

/**
 * Share of the pid's samples whose user-space leaf is on a `pause` or right
 * after one (sampling skid puts the IP past it). 0 when nothing can be read.
 */
export function spinHintShare(pid: number, stacks: readonly RawStack[], readMemory: MemoryReader): number {
  let total = 0;
  const userLeaf = new Map<bigint, number>();
  for (const s of stacks) {
    if (s.pid !== pid) continue;
    total += s.count;
    const leaf = s.user[0];
    if (s.kernel.length === 0 && leaf !== undefined) userLeaf.set(leaf, (userLeaf.get(leaf) ?? 0) + s.count);
  }
  if (total === 0) return 0;
  const hottest = [...userLeaf.entries()].sort((a, b) => b[1] - a[1]).slice(0, MAX_ADDRESSES);
  let onPause = 0;
  for (const [address, count] of hottest) {
    if (address < 2n) continue;
    try {
      // Two bytes before the IP (a pause just executed) and two at it (about to execute one).
      const bytes = readMemory(pid, address - 2n, 4);
      if (isPauseAt(bytes, 0) || isPauseAt(bytes, 2)) onPause += count;
    } catch {
      // The process exited or the page is gone: no evidence either way.
    }
  }
  return onPause / total;
}
