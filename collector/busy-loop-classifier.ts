// Decides, for one hot process over one window, whether it is busy-looping
// (burning CPU with no forward progress per iteration), working, or idle, and
// says why with the numbers behind it.
import type { ProcessInfo, SyscallSlice } from '../proto/wire.js';
import type { ProcessSampleStats } from './sample-stats.js';
import type { WindowVerdict } from './verdict-types.js';

/** Below this many syscalls per second a hot process is pure user-space work (or a user-space spin). */
const FEW_SYSCALLS_PER_SEC = 200;
/** A spin makes a syscall per iteration; real work rarely exceeds this many per second without moving bytes. */
const SPIN_SYSCALLS_PER_SEC = 2000;
/**
 * Share of samples on a spin-wait hint (`pause`) that makes a user-space spin.
 * Leaf concentration alone cannot decide: a matrix multiply stalled on one
 * load is as concentrated as a spin.
 */
const SPIN_HINT_SHARE = 0.5;
/** Bytes per read/write call below which calls move essentially nothing. */
const TRIVIAL_BYTES_PER_CALL = 16;
/** Interpreters and runtimes whose event loops spin in their own frames. */
const RUNTIME_EXE = /\/(node|nodejs|deno|bun|python[\d.]*|ruby[\d.]*|java|dotnet|php[\d.]*)$/;

/** 0.998 → "99.8%", 0.5 → "50%". */
const pct = (x: number): string => `${Number((100 * x).toFixed(1))}%`;

function rate(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M/s`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(n >= 1e4 ? 0 : 1)}k/s`;
  return `${n.toFixed(0)}/s`;
}

function bytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n.toFixed(0)} B`;
}

const clamp01 = (x: number): number => Math.max(0, Math.min(1, x));

interface Rates {
  syscallsPerSec: number;
  /** Whether the rate comes from a direct counter or the slice (true) or only /proc/PID/io (false). */
  direct: boolean;
  bytesPerSec: number;
}

function ratesOf(p: ProcessInfo, slice: SyscallSlice | null): Rates {
  const s = p.signals;
  const ioBytes = s ? s.readBytesPerSec + s.writeBytesPerSec : 0;
  if (s?.syscallRateMeasured) return { syscallsPerSec: s.syscallsPerSec, direct: true, bytesPerSec: ioBytes };
  if (slice && slice.seconds > 0) return { syscallsPerSec: slice.syscalls / slice.seconds, direct: true, bytesPerSec: ioBytes };
  return { syscallsPerSec: s ? s.readSyscallsPerSec + s.writeSyscallsPerSec : 0, direct: false, bytesPerSec: ioBytes };
}

function sampleEvidence(stats: ProcessSampleStats | undefined): string {
  if (!stats || stats.samples === 0) return '';
  const parts = [`${pct(stats.syscallShare)} of ${stats.samples} samples in the kernel`];
  if (stats.topRuntimeFrame) parts.push(`${pct(stats.topRuntimeShare)} in ${stats.topRuntimeFrame}`);
  return '; ' + parts.join(', ');
}

/** A hot process's verdict; `stats` are its samples in the same window, if any. */
export function classifyHotProcess(p: ProcessInfo, stats: ProcessSampleStats | undefined): WindowVerdict {
  const slice = p.signals?.syscallSlice ?? null;
  const r = ratesOf(p, slice);
  const cpu = `${p.cpuCores.toFixed(2)} cores`;
  const tail = sampleEvidence(stats);

  // Few syscalls: either computing, or spinning on a flag in user space.
  if (r.syscallsPerSec < FEW_SYSCALLS_PER_SEC) {
    const spinShare = p.signals?.spinHintShare ?? 0;
    if (spinShare >= SPIN_HINT_SHARE) {
      const concentration = stats ? `, ${stats.leafAddresses90} instruction address(es) carry 90% of ${stats.samples} samples` : '';
      return {
        verdict: 'busy-loop',
        kind: 'user-spin',
        score: clamp01(spinShare),
        evidence: `${cpu}, ${rate(r.syscallsPerSec)} syscalls; ${pct(spinShare)} of samples on a spin-wait pause instruction${concentration}: spinning in user space${tail}`,
      };
    }
    const spread = stats ? `, ${stats.leafAddresses90} instruction addresses carry 90% of ${stats.samples} samples` : '';
    return { verdict: 'working', kind: 'compute', score: stats ? clamp01(0.5 + stats.leafAddresses90 / 40) : 0.5, evidence: `${cpu}, ${rate(r.syscallsPerSec)} syscalls${spread}${tail}` };
  }

  if (slice && slice.syscalls > 0) {
    const n = slice.syscalls;
    const perSec = (x: number): number => x / slice.seconds;
    const movedShare = slice.rwCalls > 0 ? slice.rwMovedCalls / slice.rwCalls : 0;
    // A spin's few real reads/writes (a runtime's eventfd wake-ups) move bytes; what matters is how few they are.
    const progressShare = slice.rwMovedCalls / n;
    const bytesPerCall = slice.rwBytes / n;
    const progress = `${bytes(perSec(slice.rwBytes))}/s moved by ${rate(perSec(slice.rwMovedCalls))} read/write calls`;
    const spinning = r.syscallsPerSec >= SPIN_SYSCALLS_PER_SEC && bytesPerCall < TRIVIAL_BYTES_PER_CALL;

    if (spinning && slice.schedYield / n >= 0.5) {
      return {
        verdict: 'busy-loop',
        kind: 'yield-spin',
        score: clamp01(slice.schedYield / n),
        evidence: `sched_yield ${rate(perSec(slice.schedYield))} (${pct(slice.schedYield / n)} of syscalls), ${progress}; ${cpu}${tail}`,
      };
    }
    if (spinning && slice.futexEagain / n >= 0.3) {
      return {
        verdict: 'busy-loop',
        kind: 'futex-spin',
        score: clamp01(slice.futexEagain / Math.max(slice.futexCalls, 1)),
        evidence: `futex ${rate(perSec(slice.futexCalls))}, ${pct(slice.futexEagain / Math.max(slice.futexCalls, 1))} returned EAGAIN at once, ${progress}; ${cpu}${tail}`,
      };
    }
    const waitNoProgress = Math.max(slice.waitReturnedZero, slice.waitImmediate);
    if (spinning && slice.waitCalls / n >= 0.3 && waitNoProgress / Math.max(slice.waitCalls, 1) >= 0.8) {
      const waitShare = waitNoProgress / slice.waitCalls;
      const zeroTimeout = slice.waitZeroTimeout / slice.waitCalls;
      const runtimeFrames = (stats?.runtimeShare ?? 0) >= 0.3;
      const runtimeExe = RUNTIME_EXE.test(p.exe);
      const waits = `wait calls ${rate(perSec(slice.waitCalls))}, ${pct(waitShare)} returned immediately (${pct(slice.waitReturnedZero / slice.waitCalls)} with nothing ready, ${pct(zeroTimeout)} with timeout 0)`;
      if (runtimeFrames || runtimeExe) {
        return {
          verdict: 'busy-loop',
          kind: 'runtime-spin',
          score: clamp01(waitShare * (1 - progressShare)),
          evidence: `${waits}, ${progress}: the event loop re-schedules itself${runtimeFrames ? '' : ` (${p.exe.split('/').pop()} runtime)`}; ${cpu}${tail}`,
        };
      }
      return {
        verdict: 'busy-loop',
        kind: 'poll-no-progress',
        score: clamp01(waitShare * (1 - progressShare)),
        evidence: `${waits}, ${slice.eagain > 0 ? `${pct(slice.eagain / n)} of syscalls returned EAGAIN, ` : ''}${progress}; ${cpu}${tail}`,
      };
    }
    if (spinning && slice.eagain / n >= 0.5) {
      return {
        verdict: 'busy-loop',
        kind: 'eagain-spin',
        score: clamp01(slice.eagain / n),
        evidence: `${rate(r.syscallsPerSec)} syscalls, ${pct(slice.eagain / n)} returned EAGAIN, ${progress}; ${cpu}${tail}`,
      };
    }
    if (movedShare >= 0.3 || slice.rwBytes > 0) {
      return {
        verdict: 'working',
        kind: 'io',
        score: clamp01(0.5 + movedShare / 2),
        evidence: `${rate(r.syscallsPerSec)} syscalls, ${progress} (${pct(movedShare)} of read/write calls moved data); ${cpu}${tail}`,
      };
    }
  }

  // No slice: /proc/PID/io still tells whether bytes move per read/write call.
  const perCall = r.syscallsPerSec > 0 ? r.bytesPerSec / r.syscallsPerSec : 0;
  if (!r.direct && perCall < TRIVIAL_BYTES_PER_CALL && r.syscallsPerSec >= SPIN_SYSCALLS_PER_SEC) {
    return {
      verdict: 'busy-loop',
      kind: 'eagain-spin',
      score: 0.5,
      evidence: `${rate(r.syscallsPerSec)} read/write calls moving ${bytes(r.bytesPerSec)}/s (${perCall.toFixed(1)} B per call), no syscall slice; ${cpu}${tail}`,
    };
  }
  const io = r.bytesPerSec > 0;
  return {
    verdict: 'working',
    kind: io ? 'io' : 'compute',
    score: 0.5,
    evidence: `${rate(r.syscallsPerSec)} syscalls, ${bytes(r.bytesPerSec)}/s read+written; ${cpu}${tail}`,
  };
}

/** A process that was sampled or used CPU but stayed under the agent's hot threshold. */
export function idleVerdict(p: ProcessInfo): WindowVerdict {
  return { verdict: 'idle', kind: '', score: clamp01(1 - p.cpuCores), evidence: `${p.cpuCores.toFixed(2)} cores, below the hot threshold` };
}
