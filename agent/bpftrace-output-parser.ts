// Reads what bpf/oncpu.bt prints under `bpftrace -f json`: one JSON object
// per line. Per window the program prints the @samples map (stack key →
// count), the @thread_names map (tid → comm) and a printf line closing the
// window with its CLOCK_MONOTONIC time. Empty maps print nothing at all. At
// exit it prints the partial window the same way, closed by a final-window line.
//
// A @samples key is bpftrace's text for [pid, tid, kstack(perf), ustack(perf)]:
//   "<pid>,<tid>,<kstack>,<ustack>"
// where each stack is either empty or "\n\t<hex> <symbol...>" per frame followed
// by a final "\n". Symbols may contain commas and spaces (C++), so the key is
// split by that structure, never by searching for commas.
import type { CapturedWindow, RawStack } from './capture-types.js';

export const WINDOW_END_PREFIX = 'hotloop_window_end ';
export const FINAL_WINDOW_END_PREFIX = 'hotloop_final_window_end ';
const SAMPLES_MAP = '@samples';
const THREAD_NAMES_MAP = '@thread_names';

export type BpftraceRecord =
  | { kind: 'samples'; stacks: RawStack[]; skippedEntries: number; firstSkipReason?: string }
  | { kind: 'thread-names'; names: Map<number, string> }
  | { kind: 'window-end'; monotonicNs: bigint }
  /** Closes the partial window bpftrace prints when it exits. */
  | { kind: 'final-window-end'; monotonicNs: bigint }
  | { kind: 'lost-events'; count: number }
  /** Output the sampler does not use (attached_probes, other maps, other printf text). */
  | { kind: 'other'; type: string }
  | { kind: 'malformed'; reason: string };

type StackKey = Omit<RawStack, 'count'>;

export function parseBpftraceLine(line: string): BpftraceRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return malformed(`not JSON: ${preview(line)}`);
  }
  if (!isObject(parsed) || typeof parsed.type !== 'string') return malformed(`no "type" field: ${preview(line)}`);
  const { type, data } = parsed;
  switch (type) {
    case 'map':
      return parseMapRecord(data, line);
    case 'printf':
      return parsePrintfRecord(data, line);
    case 'lost_events':
      return parseLostEvents(data, line);
    default:
      return { kind: 'other', type };
  }
}

function parseMapRecord(data: unknown, line: string): BpftraceRecord {
  if (!isObject(data)) return malformed(`map record without an object "data": ${preview(line)}`);
  if (SAMPLES_MAP in data) return parseSamplesMap(data[SAMPLES_MAP], line);
  if (THREAD_NAMES_MAP in data) return parseThreadNamesMap(data[THREAD_NAMES_MAP], line);
  return { kind: 'other', type: 'map' };
}

function parseSamplesMap(entries: unknown, line: string): BpftraceRecord {
  if (!isObject(entries)) return malformed(`${SAMPLES_MAP} is not an object: ${preview(line)}`);
  const stacks: RawStack[] = [];
  let skippedEntries = 0;
  let firstSkipReason: string | undefined;
  for (const [key, count] of Object.entries(entries)) {
    const parsedKey = parseStackKey(key);
    if (typeof parsedKey === 'string' || !isPositiveCount(count)) {
      skippedEntries++;
      const reason = typeof parsedKey === 'string' ? parsedKey : `count is not a positive integer (${JSON.stringify(count)})`;
      firstSkipReason ??= `${reason}: ${preview(key)}`;
      continue;
    }
    stacks.push({ ...parsedKey, count });
  }
  return firstSkipReason === undefined
    ? { kind: 'samples', stacks, skippedEntries }
    : { kind: 'samples', stacks, skippedEntries, firstSkipReason };
}

function parseThreadNamesMap(entries: unknown, line: string): BpftraceRecord {
  if (!isObject(entries)) return malformed(`${THREAD_NAMES_MAP} is not an object: ${preview(line)}`);
  const names = new Map<number, string>();
  for (const [key, comm] of Object.entries(entries)) {
    const tid = parseId(key);
    if (tid === undefined || typeof comm !== 'string') return malformed(`bad ${THREAD_NAMES_MAP} entry ${preview(key)}`);
    names.set(tid, comm);
  }
  return { kind: 'thread-names', names };
}

function parsePrintfRecord(data: unknown, line: string): BpftraceRecord {
  if (typeof data !== 'string') return malformed(`printf record without string "data": ${preview(line)}`);
  const prefix = data.startsWith(WINDOW_END_PREFIX) ? WINDOW_END_PREFIX : data.startsWith(FINAL_WINDOW_END_PREFIX) ? FINAL_WINDOW_END_PREFIX : undefined;
  if (prefix === undefined) return { kind: 'other', type: 'printf' };
  const digits = data.slice(prefix.length).trim();
  if (!/^\d{1,20}$/.test(digits)) return malformed(`window end without a time: ${preview(data)}`);
  return { kind: prefix === WINDOW_END_PREFIX ? 'window-end' : 'final-window-end', monotonicNs: BigInt(digits) };
}

function parseLostEvents(data: unknown, line: string): BpftraceRecord {
  if (!isObject(data) || typeof data.events !== 'number') return malformed(`lost_events without a count: ${preview(line)}`);
  return { kind: 'lost-events', count: data.events };
}

/** Splits one @samples key; returns the reason as a string when it does not have the expected structure. */
export function parseStackKey(key: string): StackKey | string {
  const ids = /^(\d{1,10}),(\d{1,10}),/.exec(key);
  if (!ids) return 'key does not start with "<pid>,<tid>,"';
  const pid = parseId(ids[1] ?? '');
  const tid = parseId(ids[2] ?? '');
  if (pid === undefined || tid === undefined) return 'pid or tid out of range';

  const kernel = readStack(key, ids[0].length);
  if (typeof kernel === 'string') return `kernel stack: ${kernel}`;
  if (key[kernel.end] !== ',') return 'no "," between the kernel and the user stack';
  const user = readStack(key, kernel.end + 1);
  if (typeof user === 'string') return `user stack: ${user}`;
  if (user.end !== key.length) return 'trailing text after the user stack';
  return { pid, tid, kernel: kernel.addresses, user: user.addresses };
}

/** Reads frame lines ("\n\t<hex> ...") from pos; `end` is just past the stack's closing "\n". */
function readStack(key: string, pos: number): { addresses: bigint[]; end: number } | string {
  const addresses: bigint[] = [];
  while (key.startsWith('\n\t', pos)) {
    const lineEnd = key.indexOf('\n', pos + 2);
    if (lineEnd < 0) return 'unterminated frame line';
    const address = frameAddress(key.slice(pos + 2, lineEnd));
    if (address === undefined) return `frame without a hex address: ${preview(key.slice(pos + 2, lineEnd))}`;
    addresses.push(address);
    pos = lineEnd;
  }
  if (addresses.length === 0) return { addresses, end: pos };
  if (key[pos] !== '\n') return 'stack not closed by a newline';
  return { addresses, end: pos + 1 };
}

function frameAddress(frameLine: string): bigint | undefined {
  const space = frameLine.indexOf(' ');
  const hex = space < 0 ? frameLine : frameLine.slice(0, space);
  return /^[0-9a-fA-F]{1,16}$/.test(hex) ? BigInt(`0x${hex}`) : undefined;
}

function parseId(text: string): number | undefined {
  if (!/^\d{1,10}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 0xffff_ffff ? n : undefined;
}

/**
 * Collects one window's records: the maps printed before a window-end line
 * belong to the window that line closes.
 */
export class BpftraceWindowAssembler {
  private stacks: RawStack[] = [];
  private threadNames = new Map<number, string>();

  /** Returns the finished window when the record closes one. */
  accept(record: BpftraceRecord): CapturedWindow | undefined {
    switch (record.kind) {
      case 'samples':
        this.stacks.push(...record.stacks);
        return undefined;
      case 'thread-names':
        for (const [tid, comm] of record.names) this.threadNames.set(tid, comm);
        return undefined;
      case 'window-end':
      case 'final-window-end': {
        const window: CapturedWindow = { endMonotonicNs: record.monotonicNs, stacks: this.stacks, threadNames: this.threadNames };
        this.reset();
        return window;
      }
      default:
        return undefined;
    }
  }

  /** Drops a partly read window (after a child restart or garbage). */
  reset(): void {
    this.stacks = [];
    this.threadNames = new Map();
  }
}

function malformed(reason: string): BpftraceRecord {
  return { kind: 'malformed', reason };
}

function isPositiveCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function preview(text: string): string {
  const oneLine = JSON.stringify(text);
  return oneLine.length > 160 ? `${oneLine.slice(0, 157)}...` : oneLine;
}
