// Scans /proc every tick, accumulates each process's CPU over the current
// window, and at window end reports which processes were hot, with metadata.
// Between window ends it also says which processes are hot right now (over
// the last few scans), so deeper signals can be gathered while the window runs.
import { readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { containerIdFromCgroup, parseCgroup, parseCmdline, parseProcStat, readProcText } from './proc-stat.js';

export interface ProcessMetadata {
  comm: string;
  exe: string;
  cmdline: string;
  cgroup: string;
  containerId: string;
}

export interface ProcessWindowSummary extends ProcessMetadata {
  pid: number;
  /** Average CPU over the window in cores (1 = one core fully busy). */
  cpuCores: number;
  hot: boolean;
  /** Still present at the last scan. */
  alive: boolean;
}

export interface CurrentlyHotProcess {
  pid: number;
  /** Average CPU over the last few scans, in cores. */
  cpuCores: number;
}

/** Scans that "currently hot" looks back over: long enough to smooth one busy second, short enough to react within seconds. */
const RECENT_SCANS = 3;
/** Less history than this is too little to call a process hot: 10 ms clock ticks make short spans noisy. */
const MIN_RECENT_SECONDS = 0.9;

interface TrackedProcess {
  startTime: number;
  lastTicks: number;
  windowTicks: number;
  /** CPU ticks in each of the last RECENT_SCANS scan intervals it was seen in, newest last. */
  recentTicks: number[];
  meta: ProcessMetadata | null;
  seenInLastScan: boolean;
}

export interface HotProcessTrackerOptions {
  procRoot?: string;
  /** Clock ticks per second (sysconf(_SC_CLK_TCK)). */
  clockTicksPerSecond: number;
  /** Share of one core over the window at which a process is hot. */
  hotThreshold: number;
  /**
   * Called once per process, at the first scan that sees it use CPU. Once is
   * enough: re-reading maps every second for every busy process costs more
   * than the rare library loaded and unloaded within one window.
   */
  onFirstActive?: (pid: number) => void;
}


export class HotProcessTracker {
  private readonly procRoot: string;
  private readonly processes = new Map<number, TrackedProcess>();
  private windowStartMs: number;
  private lastScanMs: number | undefined;
  /** Lengths of the last RECENT_SCANS scan intervals in seconds, newest last. */
  private readonly recentIntervals: number[] = [];

  constructor(private readonly opts: HotProcessTrackerOptions) {
    this.procRoot = opts.procRoot ?? '/proc';
    this.windowStartMs = Date.now();
  }

  /** One pass over /proc/*\/stat. Cheap: one small read per process. */
  scan(): void {
    let entries: string[];
    try {
      entries = readdirSync(this.procRoot);
    } catch {
      return;
    }
    const now = Date.now();
    if (this.lastScanMs !== undefined) pushBounded(this.recentIntervals, Math.max((now - this.lastScanMs) / 1000, 1e-3));
    this.lastScanMs = now;
    for (const p of this.processes.values()) p.seenInLastScan = false;
    for (const name of entries) {
      const pid = Number(name);
      if (!Number.isInteger(pid) || pid <= 0) continue;
      const text = readProcText(path.join(this.procRoot, name, 'stat'));
      const stat = text === null ? null : parseProcStat(text);
      if (!stat) continue; // exited between readdir and read
      const ticks = stat.utime + stat.stime;
      let tracked = this.processes.get(pid);
      if (tracked && tracked.startTime !== stat.startTime) tracked = undefined; // pid reused
      if (!tracked) {
        // First sight: count only CPU from now on, not its whole lifetime.
        tracked = { startTime: stat.startTime, lastTicks: ticks, windowTicks: 0, recentTicks: [], meta: null, seenInLastScan: true };
        this.processes.set(pid, tracked);
        continue;
      }
      tracked.seenInLastScan = true;
      const delta = ticks - tracked.lastTicks;
      tracked.lastTicks = ticks;
      pushBounded(tracked.recentTicks, delta);
      if (delta > 0) {
        tracked.windowTicks += delta;
        if (!tracked.meta) {
          tracked.meta = this.readMetadata(pid, stat.comm);
          this.opts.onFirstActive?.(pid);
        }
      }
    }
  }

  /**
   * Metadata for a pid, reading /proc if the tracker has none yet (a process
   * that only shows up in samples). Null when it exited before we looked.
   */
  metadataFor(pid: number): ProcessMetadata | null {
    const tracked = this.processes.get(pid);
    if (tracked?.meta) return tracked.meta;
    const text = readProcText(path.join(this.procRoot, String(pid), 'stat'));
    const stat = text === null ? null : parseProcStat(text);
    if (!stat) return null;
    const meta = this.readMetadata(pid, stat.comm);
    if (tracked && tracked.startTime === stat.startTime) tracked.meta = meta;
    return meta;
  }

  /**
   * Ends the current window: returns every process that used CPU in it, and
   * forgets processes that have exited.
   */
  endWindow(): ProcessWindowSummary[] {
    const now = Date.now();
    const seconds = Math.max((now - this.windowStartMs) / 1000, 1e-3);
    this.windowStartMs = now;
    const out: ProcessWindowSummary[] = [];
    for (const [pid, p] of this.processes) {
      if (p.windowTicks > 0 && p.meta) {
        const cpuCores = p.windowTicks / this.opts.clockTicksPerSecond / seconds;
        out.push({ pid, ...p.meta, cpuCores, hot: cpuCores >= this.opts.hotThreshold, alive: p.seenInLastScan });
      }
      p.windowTicks = 0;
      if (!p.seenInLastScan) this.processes.delete(pid);
    }
    return out;
  }

  /** Processes whose CPU over the last few scans reaches the hot threshold, hottest first. */
  currentlyHot(): CurrentlyHotProcess[] {
    const out: CurrentlyHotProcess[] = [];
    for (const [pid, p] of this.processes) {
      if (!p.seenInLastScan || p.recentTicks.length === 0) continue;
      // A process seen for fewer scans is averaged over the intervals it was seen in.
      const seconds = this.recentIntervals.slice(-p.recentTicks.length).reduce((a, b) => a + b, 0);
      if (seconds < MIN_RECENT_SECONDS) continue;
      const ticks = p.recentTicks.reduce((a, b) => a + b, 0);
      const cpuCores = ticks / this.opts.clockTicksPerSecond / seconds;
      if (cpuCores >= this.opts.hotThreshold) out.push({ pid, cpuCores });
    }
    return out.sort((a, b) => b.cpuCores - a.cpuCores);
  }

  livePids(): Set<number> {
    const live = new Set<number>();
    for (const [pid, p] of this.processes) if (p.seenInLastScan) live.add(pid);
    return live;
  }

  private readMetadata(pid: number, comm: string): ProcessMetadata {
    const dir = path.join(this.procRoot, String(pid));
    let exe = '';
    try {
      exe = readlinkSync(path.join(dir, 'exe'));
    } catch {
      // kernel threads have no exe; exited processes neither
    }
    const cgroup = parseCgroup(readProcText(path.join(dir, 'cgroup')) ?? '');
    return {
      comm,
      exe,
      cmdline: parseCmdline(readProcText(path.join(dir, 'cmdline')) ?? ''),
      cgroup,
      containerId: containerIdFromCgroup(cgroup),
    };
  }
}

function pushBounded(list: number[], value: number): void {
  list.push(value);
  if (list.length > RECENT_SCANS) list.shift();
}
