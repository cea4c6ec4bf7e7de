// CPU time and peak RSS of live processes, read from /proc (for benchmarks).
import { readdirSync, readFileSync } from 'node:fs';
import { parseProcStat } from '../../agent/proc-stat.js';

const CLK_TCK = 100; // Linux USER_HZ on every architecture hotloop runs on

export interface Usage {
  cpuSeconds: number;
  peakRssMiB: number;
}

export function usageOf(pid: number): Usage {
  const stat = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  if (!stat) throw new Error(`cannot read /proc/${pid}/stat`);
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuSeconds: (stat.utime + stat.stime) / CLK_TCK, peakRssMiB: Number(hwm?.[1] ?? 0) / 1024 };
}

/** Direct children of a process (any of its threads may have spawned them). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    } catch {
      // thread exited
    }
  }
  return out;
}

export function currentRssMiB(pid: number): number {
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(rss?.[1] ?? 0) / 1024;
}
