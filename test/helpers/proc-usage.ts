// CPU time and peak RSS of live processes, read from /proc (for benchmarks).
import { readFileSync } from 'node:fs';
import { clockTicksPerSecond } from '../../agent/libc.js';
import { parseProcStat } from '../../agent/proc-stat.js';

export interface Usage {
  cpuSeconds: number;
  peakRssMiB: number;
}

/** CPU of the process and of the children it has reaped (an agent's short bpftrace slices), and its peak RSS. */
export function usageOf(pid: number): Usage {
  const stat = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  if (!stat) throw new Error(`cannot read /proc/${pid}/stat`);
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuSeconds: (stat.utime + stat.stime + stat.cutime + stat.cstime) / clockTicksPerSecond(), peakRssMiB: Number(hwm?.[1] ?? 0) / 1024 };
}


export function currentRssMiB(pid: number): number {
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(rss?.[1] ?? 0) / 1024;
}
