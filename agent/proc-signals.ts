// Cheap no-progress signals from /proc for one process: context switches and
// scheduler time slices over all its threads, and read/write calls and bytes.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import type { ProcessSignals } from '../proto/wire.js';
import { readProcText } from './proc-stat.js';

const readOrEmpty = (file: string): string => readProcText(file) ?? '';

/** Cumulative counters of a process at one instant. */
export interface ProcCounters {
  atMs: number;
  voluntarySwitches: number;
  involuntarySwitches: number;
  /** Time slices run on a CPU (schedstat field 3), summed over threads. */
  timeslices: number;
  /** Nanoseconds spent runnable but waiting for a CPU (schedstat field 2). */
  runQueueWaitNs: number;
  syscr: number;
  syscw: number;
  rchar: number;
  wchar: number;
}

/** The /proc part of the signals the agent sends. */
export type ProcRates = Pick<
  ProcessSignals,
  | 'voluntarySwitchesPerSec'
  | 'involuntarySwitchesPerSec'
  | 'timeslicesPerSec'
  | 'runQueueWaitShare'
  | 'readSyscallsPerSec'
  | 'writeSyscallsPerSec'
  | 'readBytesPerSec'
  | 'writeBytesPerSec'
>;


/** `Key:\tvalue` lines of /proc/PID/status or /proc/PID/io. */
export function parseKeyValues(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out.set(line.slice(0, i), Number(line.slice(i + 1).trim().split(/\s+/)[0]));
  }
  return out;
}

/** Reads the counters; null when the process is gone. */
export function readProcCounters(pid: number, procRoot = '/proc', nowMs = Date.now()): ProcCounters | null {
  const dir = path.join(procRoot, String(pid));
  let tids: string[];
  try {
    tids = readdirSync(path.join(dir, 'task'));
  } catch {
    return null;
  }
  const c: ProcCounters = { atMs: nowMs, voluntarySwitches: 0, involuntarySwitches: 0, timeslices: 0, runQueueWaitNs: 0, syscr: 0, syscw: 0, rchar: 0, wchar: 0 };
  for (const tid of tids) {
    const status = parseKeyValues(readOrEmpty(path.join(dir, 'task', tid, 'status')));
    c.voluntarySwitches += status.get('voluntary_ctxt_switches') ?? 0;
    c.involuntarySwitches += status.get('nonvoluntary_ctxt_switches') ?? 0;
    const [, waitNs, slices] = readOrEmpty(path.join(dir, 'task', tid, 'schedstat')).trim().split(' ').map(Number);
    c.runQueueWaitNs += Number.isFinite(waitNs) ? (waitNs as number) : 0;
    c.timeslices += Number.isFinite(slices) ? (slices as number) : 0;
  }
  // /proc/PID/io counts the whole thread group, exited threads included.
  const io = parseKeyValues(readOrEmpty(path.join(dir, 'io')));
  c.syscr = io.get('syscr') ?? 0;
  c.syscw = io.get('syscw') ?? 0;
  c.rchar = io.get('rchar') ?? 0;
  c.wchar = io.get('wchar') ?? 0;
  return c;
}

/** Rates between two readings; thread exits can make summed counters shrink, so deltas floor at 0. */
export function procRates(before: ProcCounters, after: ProcCounters): ProcRates {
  const seconds = Math.max((after.atMs - before.atMs) / 1000, 1e-3);
  const per = (a: number, b: number): number => Math.max(0, b - a) / seconds;
  return {
    voluntarySwitchesPerSec: per(before.voluntarySwitches, after.voluntarySwitches),
    involuntarySwitchesPerSec: per(before.involuntarySwitches, after.involuntarySwitches),
    timeslicesPerSec: per(before.timeslices, after.timeslices),
    runQueueWaitShare: per(before.runQueueWaitNs, after.runQueueWaitNs) / 1e9,
    readSyscallsPerSec: per(before.syscr, after.syscr),
    writeSyscallsPerSec: per(before.syscw, after.syscw),
    readBytesPerSec: per(before.rchar, after.rchar),
    writeBytesPerSec: per(before.wchar, after.wchar),
  };
}
