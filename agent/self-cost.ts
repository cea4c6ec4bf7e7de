// What profiling costs, measured by the agent about itself once per window:
// CPU of the agent process and of its children (the capture child, signal
// slices), whether they are still running or already exited and reaped, and
// the resident memory of the agent with its running children.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { AgentCost } from '../proto/wire.js';

interface StatTimes {
  /** utime + stime of the process itself, in ticks. */
  ownTicks: number;
  /** cutime + cstime: its children that have exited and been reaped, in ticks. */
  reapedChildrenTicks: number;
}

/** CPU time fields of /proc/PID/stat; comm may hold spaces and parentheses, so fields count from the last ')'. */
function parseStatTimes(text: string): StatTimes | null {
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
  const [utime, stime, cutime, cstime] = fields.slice(11, 15).map(Number);
  if (![utime, stime, cutime, cstime].every((n) => Number.isFinite(n))) return null;
  return { ownTicks: utime! + stime!, reapedChildrenTicks: cutime! + cstime! };
}

function read(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

export class SelfCostMeter {
  private lastCpuSeconds: number;

  /** `clockTicksPerSecond`: the unit of /proc/PID/stat CPU times. */
  constructor(private readonly clockTicksPerSecond: number) {
    this.lastCpuSeconds = this.cumulativeCpuSeconds();
  }

  /**
   * The cost of the window that ends now. `signalsCpuSeconds` is the part the
   * no-progress signals account for; it is already included in the total.
   */
  endWindow(signalsCpuSeconds: number): AgentCost {
    const now = this.cumulativeCpuSeconds();
    // A child exiting between the readings can be missed once; it is found in the next reading, so never report less than 0.
    const cpuSeconds = Math.max(0, now - this.lastCpuSeconds);
    this.lastCpuSeconds = now;
    return { cpuSeconds, signalsCpuSeconds, rssBytes: this.rssBytes() };
  }

  /** Agent CPU so far, plus reaped children's, plus running children's (and theirs). */
  private cumulativeCpuSeconds(): number {
    const usage = process.cpuUsage();
    const self = parseStatTimes(read('/proc/self/stat') ?? '');
    let childTicks = self?.reapedChildrenTicks ?? 0;
    for (const child of this.runningChildren()) {
      const times = parseStatTimes(read(`/proc/${child}/stat`) ?? '');
      if (times) childTicks += times.ownTicks + times.reapedChildrenTicks;
    }
    return (usage.user + usage.system) / 1e6 + childTicks / this.clockTicksPerSecond;
  }

  private rssBytes(): number {
    let bytes = process.memoryUsage.rss();
    for (const child of this.runningChildren()) {
      const kb = /VmRSS:\s+(\d+) kB/.exec(read(`/proc/${child}/status`) ?? '');
      if (kb) bytes += Number(kb[1]) * 1024;
    }
    return bytes;
  }

  /** Direct children of the agent: any of its threads may have spawned them. */
  private runningChildren(): number[] {
    const taskDir = '/proc/self/task';
    let tids: string[];
    try {
      tids = readdirSync(taskDir);
    } catch {
      return [];
    }
    const out: number[] = [];
    for (const tid of tids) {
      const text = read(path.join(taskDir, tid, 'children'))?.trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    }
    return out;
  }
}
