// What profiling costs, measured by the agent about itself once per window:
// CPU of the agent process and of its children (the capture child, signal
// slices), whether they are still running or already exited and reaped, and
// the resident memory of the agent with its running children.
import type { AgentCost } from '../proto/wire.js';
import { childPids, parseProcStat, readProcText } from './proc-stat.js';

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
    const self = parseProcStat(readProcText('/proc/self/stat') ?? '');
    let childTicks = self ? self.cutime + self.cstime : 0;
    for (const child of childPids('self')) {
      const times = parseProcStat(readProcText(`/proc/${child}/stat`) ?? '');
      if (times) childTicks += times.utime + times.stime + times.cutime + times.cstime;
    }
    return (usage.user + usage.system) / 1e6 + childTicks / this.clockTicksPerSecond;
  }

  private rssBytes(): number {
    let bytes = process.memoryUsage.rss();
    for (const child of childPids('self')) {
      const kb = /VmRSS:\s+(\d+) kB/.exec(readProcText(`/proc/${child}/status`) ?? '');
      if (kb) bytes += Number(kb[1]) * 1024;
    }
    return bytes;
  }
}
