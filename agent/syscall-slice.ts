// Runs bpf/syscall-slice.bt once for a short slice: bpftrace classifies how
// the syscalls of up to eight hot processes return and prints one readout at
// exit, parsed here into a SyscallSlice per pid. Anything that goes wrong
// (no bpftrace, a crash, a hang, garbage output) yields no slice and a reason;
// this module never throws at its caller.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { SyscallSlice } from '../proto/wire.js';
import { parseProcStat } from './proc-stat.js';

const SYSCALL_SLICE_PROGRAM_PATH = fileURLToPath(new URL('../../bpf/syscall-slice.bt', import.meta.url));
/** The program has this many pid slots ($1..$8). */
export const MAX_SLICE_PIDS = 8;
const SLICE_SECONDS_RANGE = { min: 1, max: 10 } as const;
/** The largest pid_max Linux allows (PID_MAX_LIMIT on 64-bit). */
const MAX_PID = 4_194_304;
/** bpftrace compiles and attaches before the slice starts, and prints after it ends. */
const STARTUP_AND_READOUT_ALLOWANCE_MS = 20_000;
const STOP_GRACE_MS = 3_000;
/** The readout is a dozen short lines; output beyond this is not a readout. */
const MAX_OUTPUT_BYTES = 1024 * 1024;
const STDERR_KEPT_CHARS = 2_000;

/** Each counter map of the program and the SyscallSlice field it fills. */
const COUNTER_MAPS = {
  '@syscalls': 'syscalls',
  '@eagain': 'eagain',
  '@wait_calls': 'waitCalls',
  '@wait_returned_zero': 'waitReturnedZero',
  '@wait_immediate': 'waitImmediate',
  '@wait_zero_timeout': 'waitZeroTimeout',
  '@sched_yield': 'schedYield',
  '@futex_calls': 'futexCalls',
  '@futex_eagain': 'futexEagain',
  '@rw_calls': 'rwCalls',
  '@rw_moved_calls': 'rwMovedCalls',
  '@rw_bytes': 'rwBytes',
} as const satisfies Record<string, Exclude<keyof SyscallSlice, 'seconds'>>;
/** Printed last: the readout is complete once it is there. */
const SLICE_LENGTH_MAP = '@slice_ns';

export type SliceReadout = { ok: true; slices: Map<number, SyscallSlice> } | { ok: false; reason: string };

export type SliceOutcome = SliceReadout & {
  /** CPU the bpftrace child used (compile, attach, readout), as far as it could be read before it was reaped. */
  childCpuSeconds: number;
};

export interface SyscallSliceOptions {
  pids: readonly number[];
  seconds: number;
  bpftracePath?: string;
  programPath?: string;
  /** Clock ticks per second of /proc/PID/stat CPU times. */
  clockTicksPerSecond: number;
}

/**
 * The program's positional parameters: the pids padded with 0 to eight slots,
 * then the seconds. Throws RangeError on anything but plain integers in range,
 * since these become arguments of a privileged child.
 */
export function sliceArguments(pids: readonly number[], seconds: number): string[] {
  if (pids.length < 1 || pids.length > MAX_SLICE_PIDS) throw new RangeError(`a slice traces 1 to ${MAX_SLICE_PIDS} pids, got ${pids.length}`);
  for (const pid of pids) {
    if (!Number.isInteger(pid) || pid < 1 || pid > MAX_PID) throw new RangeError(`pid must be an integer from 1 to ${MAX_PID}, got ${String(pid)}`);
  }
  const { min, max } = SLICE_SECONDS_RANGE;
  if (!Number.isInteger(seconds) || seconds < min || seconds > max) throw new RangeError(`slice seconds must be an integer from ${min} to ${max}, got ${String(seconds)}`);
  const slots = [...pids, ...new Array<number>(MAX_SLICE_PIDS - pids.length).fill(0)];
  return [...slots.map(String), String(seconds)];
}

export function emptySlice(seconds: number): SyscallSlice {
  return {
    seconds,
    syscalls: 0,
    eagain: 0,
    waitCalls: 0,
    waitReturnedZero: 0,
    waitImmediate: 0,
    waitZeroTimeout: 0,
    schedYield: 0,
    futexCalls: 0,
    futexEagain: 0,
    rwCalls: 0,
    rwMovedCalls: 0,
    rwBytes: 0,
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const preview = (line: string): string => (line.length > 120 ? `${line.slice(0, 120)}…` : line);

/**
 * Parses what the program prints under `bpftrace -f json`: one JSON object a
 * line, a map record per counter keyed by pid (empty maps print a blank line),
 * then @slice_ns. Every traced pid gets a slice, zeros where it made no such
 * calls. Anything unexpected makes the whole readout untrustworthy.
 */
export function parseSliceOutput(stdout: string, pids: readonly number[]): SliceReadout {
  const counts = new Map<keyof typeof COUNTER_MAPS, Map<number, number>>();
  let sliceNs: number | undefined;
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      return { ok: false, reason: `not JSON: ${preview(line)}` };
    }
    if (!isObject(record) || typeof record.type !== 'string') return { ok: false, reason: `no "type" field: ${preview(line)}` };
    if (record.type !== 'map') continue; // attached_probes and the like
    const data = record.data;
    if (!isObject(data) || Object.keys(data).length !== 1) return { ok: false, reason: `a map record without exactly one map: ${preview(line)}` };
    const [name, value] = Object.entries(data)[0] as [string, unknown];
    if (name === SLICE_LENGTH_MAP) {
      if (!isCount(value) || value === 0) return { ok: false, reason: `${SLICE_LENGTH_MAP} is not a positive integer: ${preview(line)}` };
      sliceNs = value;
      continue;
    }
    if (!(name in COUNTER_MAPS)) return { ok: false, reason: `unexpected map ${name}` };
    if (!isObject(value)) return { ok: false, reason: `${name} is not keyed by pid: ${preview(line)}` };
    const byPid = new Map<number, number>();
    for (const [key, n] of Object.entries(value)) {
      const pid = Number(key);
      if (!pids.includes(pid)) return { ok: false, reason: `${name} counts pid ${key}, which was not traced` };
      if (!isCount(n)) return { ok: false, reason: `${name}[${key}] is not a count: ${String(n)}` };
      byPid.set(pid, n);
    }
    counts.set(name as keyof typeof COUNTER_MAPS, byPid);
  }
  if (sliceNs === undefined) return { ok: false, reason: `incomplete readout: no ${SLICE_LENGTH_MAP}` };
  const slices = new Map<number, SyscallSlice>();
  for (const pid of pids) {
    const slice = emptySlice(sliceNs / 1e9);
    for (const [map, field] of Object.entries(COUNTER_MAPS) as [keyof typeof COUNTER_MAPS, (typeof COUNTER_MAPS)[keyof typeof COUNTER_MAPS]][]) {
      slice[field] = counts.get(map)?.get(pid) ?? 0;
    }
    slices.set(pid, slice);
  }
  return { ok: true, slices };
}

/** CPU seconds a live process has used, or null once it is gone. */
function processCpuSeconds(pid: number, clockTicksPerSecond: number): number | null {
  try {
    const stat = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return stat ? (stat.utime + stat.stime) / clockTicksPerSecond : null;
  } catch {
    return null;
  }
}

/** One slice: a bpftrace child from start to readout. */
export class SyscallSliceRun {
  /** Settles once the child is gone; never rejects: failures come back as { ok: false, reason }. */
  readonly outcome: Promise<SliceOutcome>;
  private child: ChildProcess | undefined;
  private cpuSeconds = 0;
  private failure: string | undefined;

  constructor(private readonly opts: SyscallSliceOptions) {
    let args: string[];
    try {
      args = sliceArguments(opts.pids, opts.seconds);
    } catch (err) {
      this.outcome = Promise.resolve({ ok: false, reason: (err as Error).message, childCpuSeconds: 0 });
      return;
    }
    this.outcome = this.run(args);
  }

  /**
   * CPU the child has used so far. bpftrace is reaped as soon as it exits,
   * taking its /proc entry along, so this is read whenever it shows a sign of
   * life, last at its readout; after that it stays at the last reading.
   */
  childCpuSeconds(): number {
    const pid = this.child?.pid;
    const now = pid === undefined ? null : processCpuSeconds(pid, this.opts.clockTicksPerSecond);
    if (now !== null) this.cpuSeconds = Math.max(this.cpuSeconds, now);
    return this.cpuSeconds;
  }

  /** Ends the slice early (the agent is stopping): the outcome is a failure. */
  cancel(): void {
    this.stop('cancelled');
  }

  private stop(reason: string): void {
    this.failure ??= reason;
    const child = this.child;
    if (!child) return;
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS).unref();
  }

  private run(args: string[]): Promise<SliceOutcome> {
    const { opts } = this;
    return new Promise((resolve) => {
      const child = spawn(opts.bpftracePath ?? 'bpftrace', ['-f', 'json', opts.programPath ?? SYSCALL_SLICE_PROGRAM_PATH, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      this.child = child;
      const stdout: Buffer[] = [];
      let stdoutBytes = 0;
      let stderr = '';
      const deadline = setTimeout(
        () => this.stop(`no readout within ${opts.seconds} s + ${STARTUP_AND_READOUT_ALLOWANCE_MS} ms`),
        opts.seconds * 1000 + STARTUP_AND_READOUT_ALLOWANCE_MS,
      );
      let settled = false;
      // A child that could not be spawned may report both 'error' and 'close'.
      const settle = (readout: SliceReadout): void => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        resolve({ ...readout, childCpuSeconds: this.cpuSeconds });
      };

      child.stdout.on('data', (chunk: Buffer) => {
        this.childCpuSeconds();
        stdoutBytes += chunk.length;
        if (stdoutBytes > MAX_OUTPUT_BYTES) this.stop(`more than ${MAX_OUTPUT_BYTES} bytes of output`);
        else stdout.push(chunk);
      });
      child.stdout.on('end', () => this.childCpuSeconds());
      child.stderr.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEPT_CHARS);
      });
      child.on('error', (err) => {
        if (child.pid === undefined) settle({ ok: false, reason: `bpftrace could not be started: ${err.message}` });
      });
      child.on('close', (code, signal) => {
        const tail = stderr.trim() ? `; stderr: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : '';
        if (this.failure) return settle({ ok: false, reason: this.failure + tail });
        if (code !== 0) return settle({ ok: false, reason: `bpftrace exited with ${signal ?? `code ${code}`}${tail}` });
        settle(parseSliceOutput(Buffer.concat(stdout).toString('utf8'), opts.pids));
      });
    });
  }
}
