// Gathers, while a window runs, the no-progress signals of the processes that
// are hot, and hands them over at window end for the processes that were hot
// over the window:
//   - /proc rates (context switches, time slices, read/write calls and bytes)
//     between the window start (or the moment the process turned hot) and its end;
//   - a bpftrace syscall slice over the hottest few processes, started as soon
//     as there is one to trace: at the window start for those already hot,
//     or right after a process turns hot. bpftrace start-up costs ~0.2 s of
//     CPU, so a window runs at most two slices and traces a process once;
//   - the syscall rate from a perf counter run for about one scan interval
//     per window, never while a slice runs (tracing would slow the process it
//     counts), because a counter costs the counted process on every syscall
//     (measured: ~150 ns, 15% of a core at 1M syscalls/s if left on).
// Hot means currently hot (the last few scans) or hot over the last window, so
// a process hovering at the threshold keeps its signals. A host with no hot
// process pays for none of it.
import type { Logger } from 'pino';
import type { ProcessSignals, SyscallSlice } from '../proto/wire.js';
import type { CurrentlyHotProcess } from './hot-process-tracker.js';
import { procRates, readProcCounters, type ProcCounters } from './proc-signals.js';
import { SyscallCounter, syscallEnterTracepointId } from './syscall-counter.js';
import { MAX_SLICE_PIDS, SyscallSliceRun, type SliceOutcome } from './syscall-slice.js';

export interface ProcessSignalsCollectorOptions {
  log: Logger;
  /** The unit of /proc/PID/stat CPU times. */
  clockTicksPerSecond: number;
  /** Length of the bpftrace slice; 1 s is plenty at the syscall rates of a spin. */
  sliceSeconds?: number;
  bpftracePath?: string;
}

export interface WindowSignals {
  /** Signals of each hot process that had any gathered. */
  byPid: Map<number, ProcessSignals>;
  /** CPU spent on signals since the previous window end: slice children and the agent's own signal work. */
  cpuSeconds: number;
}

/** The counter runs from one scan to the first scan at least this much later. */
const COUNT_MIN_MS = 900;
/** A counter cut short by the window end below this is too short for a rate. */
const COUNT_USABLE_MS = 200;
/** The first for the processes hot at the window start, one more for those turning hot later. */
const SLICES_PER_WINDOW = 2;
/**
 * A process last counted making fewer syscalls than this is computing or
 * spinning in user space: how its few syscalls return says nothing, so it is
 * not sliced (the collector's classifier does not read a slice below 200/s).
 */
const SLICE_MIN_SYSCALLS_PER_SEC = 100;
/** Counters and slices go to the hottest few processes, like the slice's pid slots. */
const MAX_DEEP_SIGNAL_PIDS = MAX_SLICE_PIDS;

interface RunningSlice {
  run: SyscallSliceRun;
  pids: Set<number>;
  /** Child CPU already counted in an earlier window's cost. */
  creditedCpuSeconds: number;
  done: Promise<void>;
}

interface RunningCounter {
  counter: SyscallCounter;
  openedAtMs: number;
}

/** What has been gathered for one process in the current window. */
interface ProcessState {
  /** /proc counters at window start, or when the process turned hot. */
  baseline: ProcCounters;
  counter: RunningCounter | null;
  /** This window's counter run is over (with a rate, or failed). */
  counted: boolean;
  syscallsPerSec: number | null;
  /** The last rate measured in an earlier window, to decide on a slice before this window's count. */
  previousSyscallsPerSec: number | null;
  /** A slice covering this process was started in this window (it may still run). */
  sliced: boolean;
  slice: SyscallSlice | null;
}

const cpuSecondsSince = (start: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1e6;
};

export class ProcessSignalsCollector {
  private readonly log: Logger;
  private readonly sliceSeconds: number;
  private readonly tracepointId: number | null;
  private readonly slicesSupported: boolean;
  private readonly states = new Map<number, ProcessState>();
  private readonly counterErrorsLogged = new Set<string>();
  /** The processes hot over the last window, hottest first. */
  private lastWindowHot: readonly CurrentlyHotProcess[] = [];
  private slicesThisWindow = 0;
  private running: RunningSlice | null = null;
  private cpuSeconds = 0;
  private stopped = false;

  constructor(private readonly opts: ProcessSignalsCollectorOptions) {
    this.log = opts.log;
    this.sliceSeconds = opts.sliceSeconds ?? 1;
    this.tracepointId = syscallEnterTracepointId();
    if (this.tracepointId === null) this.log.warn('raw_syscalls:sys_enter is not in tracefs: syscall rates of hot processes will not be measured');
    // The program's syscall numbers are x86-64's.
    this.slicesSupported = process.arch === 'x64';
    if (!this.slicesSupported) this.log.warn({ arch: process.arch }, 'no syscall slices on this architecture');
  }

  /** After each /proc scan: start or advance the signals of the hot processes. */
  onScan(currentlyHot: readonly CurrentlyHotProcess[]): void {
    if (this.stopped) return;
    const started = process.cpuUsage();
    const hot = this.hotPids(currentlyHot);
    for (const pid of hot) {
      if (this.states.has(pid)) continue;
      const baseline = readProcCounters(pid);
      if (baseline) this.states.set(pid, { baseline, counter: null, counted: false, syscallsPerSec: null, previousSyscallsPerSec: null, sliced: false, slice: null });
    }
    for (const [pid, state] of this.states) if (state.counter) this.advanceCounter(pid, state, state.counter);
    const deep = hot.filter((pid) => this.states.has(pid)).slice(0, MAX_DEEP_SIGNAL_PIDS);
    this.maybeStartSlice(deep);
    if (!this.running) {
      for (const pid of deep) {
        const state = this.states.get(pid)!;
        if (!state.counted && !state.counter) this.openCounter(pid, state);
      }
    }
    this.cpuSeconds += cpuSecondsSince(started);
  }

  /**
   * Ends the window: the signals of the processes hot over it (`windowHot`);
   * those still hot (over the window or right now) start afresh, the others
   * are dropped.
   */
  endWindow(windowHot: readonly CurrentlyHotProcess[], currentlyHot: readonly CurrentlyHotProcess[]): WindowSignals {
    const started = process.cpuUsage();
    const byPid = new Map<number, ProcessSignals>();
    const wasHot = new Set(windowHot.map((p) => p.pid));
    const keep = new Set([...wasHot, ...currentlyHot.map((p) => p.pid)]);
    for (const [pid, state] of this.states) {
      if (state.counter) this.finishCounter(pid, state, state.counter, COUNT_USABLE_MS);
      const now = readProcCounters(pid);
      if (now && wasHot.has(pid)) byPid.set(pid, this.signalsOf(state, now));
      if (!now || !keep.has(pid)) {
        this.states.delete(pid);
        continue;
      }
      state.baseline = now;
      state.previousSyscallsPerSec = state.syscallsPerSec ?? state.previousSyscallsPerSec;
      state.syscallsPerSec = null;
      state.counted = false;
      state.slice = null;
      // A slice still running counts for the window in which it completes.
      state.sliced = this.running?.pids.has(pid) ?? false;
    }
    this.lastWindowHot = [...windowHot].sort((a, b) => b.cpuCores - a.cpuCores);
    this.slicesThisWindow = 0;
    if (this.running) {
      // A slice still running is charged as it goes, as the agent's total CPU counts its child.
      const used = this.running.run.childCpuSeconds();
      this.cpuSeconds += used - this.running.creditedCpuSeconds;
      this.running.creditedCpuSeconds = used;
    }
    const spent = this.cpuSeconds + cpuSecondsSince(started);
    this.cpuSeconds = 0;
    // The new window's slice and counters start at the next scan, not here: a
    // child spawned now would be measured by the agent's cost for this window
    // while its CPU is charged to signals in the next.
    return { byPid, cpuSeconds: spent };
  }

  /** Closes every counter and ends a running slice. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const state of this.states.values()) state.counter?.counter.close();
    this.states.clear();
    const running = this.running;
    running?.run.cancel();
    await running?.done;
  }

  /** Currently hot processes, then those hot over the last window that no longer are; hottest first in each. */
  private hotPids(currentlyHot: readonly CurrentlyHotProcess[]): number[] {
    const pids = currentlyHot.map((p) => p.pid);
    const current = new Set(pids);
    for (const p of this.lastWindowHot) if (!current.has(p.pid)) pids.push(p.pid);
    return pids;
  }

  private signalsOf(state: ProcessState, now: ProcCounters): ProcessSignals {
    return {
      ...procRates(state.baseline, now),
      syscallRateMeasured: state.syscallsPerSec !== null,
      syscallsPerSec: state.syscallsPerSec ?? 0,
      syscallSlice: state.slice,
      // Needs the window's samples: agent.ts fills it in (spin-hint.ts).
      spinHintShare: 0,
    };
  }

  private openCounter(pid: number, state: ProcessState): void {
    if (this.tracepointId === null) {
      state.counted = true;
      return;
    }
    try {
      state.counter = { counter: SyscallCounter.open(pid, this.tracepointId), openedAtMs: Date.now() };
    } catch (err) {
      this.counterFailed(pid, state, err);
    }
  }

  private advanceCounter(pid: number, state: ProcessState, running: RunningCounter): void {
    if (Date.now() - running.openedAtMs >= COUNT_MIN_MS) {
      this.finishCounter(pid, state, running, COUNT_MIN_MS);
      return;
    }
    try {
      running.counter.refreshThreads();
    } catch (err) {
      this.counterFailed(pid, state, err);
    }
  }

  /** Reads the rate if the counter ran at least minMs, and closes it. */
  private finishCounter(pid: number, state: ProcessState, { counter, openedAtMs }: RunningCounter, minMs: number): void {
    const elapsedMs = Date.now() - openedAtMs;
    try {
      if (elapsedMs >= minMs) state.syscallsPerSec = counter.count() / (elapsedMs / 1000);
      counter.close();
      state.counter = null;
      state.counted = true;
    } catch (err) {
      this.counterFailed(pid, state, err);
    }
  }

  /** A counter that cannot run leaves the window without a measured rate; each kind of failure is logged once. */
  private counterFailed(pid: number, state: ProcessState, err: unknown): void {
    state.counter?.counter.close();
    state.counter = null;
    state.counted = true;
    state.syscallsPerSec = null;
    const kind = err instanceof Error ? err.message : String(err);
    if (this.counterErrorsLogged.has(kind)) return;
    this.counterErrorsLogged.add(kind);
    this.log.warn({ err, pid }, 'could not count syscalls with perf_event_open; rates not measured where this recurs');
  }

  /** Starts a slice over the deep pids not yet traced this window, unless one runs, a counter runs, or the window had its slices. */
  private maybeStartSlice(deepPids: number[]): void {
    if (!this.slicesSupported || this.running || this.slicesThisWindow >= SLICES_PER_WINDOW) return;
    if ([...this.states.values()].some((s) => s.counter)) return;
    const pids = deepPids.filter((pid) => {
      const state = this.states.get(pid)!;
      const rate = state.syscallsPerSec ?? state.previousSyscallsPerSec;
      return !state.sliced && (rate === null || rate >= SLICE_MIN_SYSCALLS_PER_SEC);
    });
    if (pids.length === 0) return;
    this.slicesThisWindow++;
    for (const pid of pids) this.states.get(pid)!.sliced = true;
    const run = new SyscallSliceRun({
      pids,
      seconds: this.sliceSeconds,
      clockTicksPerSecond: this.opts.clockTicksPerSecond,
      ...(this.opts.bpftracePath ? { bpftracePath: this.opts.bpftracePath } : {}),
    });
    this.running = { run, pids: new Set(pids), creditedCpuSeconds: 0, done: run.outcome.then((outcome) => this.onSliceDone(pids, outcome)) };
  }

  /** A slice belongs to the window in which it completes. */
  private onSliceDone(pids: number[], outcome: SliceOutcome): void {
    this.cpuSeconds += outcome.childCpuSeconds - (this.running?.creditedCpuSeconds ?? 0);
    this.running = null;
    if (this.stopped) return;
    if (!outcome.ok) {
      this.log.warn({ pids, reason: outcome.reason }, 'syscall slice failed; no slice for these processes this window');
      return;
    }
    for (const [pid, slice] of outcome.slices) {
      const state = this.states.get(pid);
      if (state) state.slice = slice;
    }
    this.log.debug({ pids, seconds: this.sliceSeconds, childCpuSeconds: outcome.childCpuSeconds }, 'syscall slice done');
  }
}
