// The bpftrace capture backend: runs bpf/oncpu.bt as a supervised child and
// turns each window readout into a CapturedWindow.
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { BpftraceWindowAssembler, parseBpftraceLine, type BpftraceRecord } from './bpftrace-output-parser.js';
import type { CaptureBackend, CapturedWindow } from './capture-types.js';
import { validateCaptureSettings, type CaptureSettings } from './capture-settings.js';
import { ChildSupervisor, type BackoffOptions } from './child-supervisor.js';

export const ONCPU_PROGRAM_PATH = fileURLToPath(new URL('../../bpf/oncpu.bt', import.meta.url));

/**
 * bpftrace 0.17 keeps kernel and user stacks in one stack-id map of 131072
 * buckets that is never emptied, and get_stackid fails on a bucket collision,
 * so stacks are lost as it fills. Replacing bpftrace after this many printed
 * stack keys (an over-count of new map entries) keeps it mostly empty.
 */
const DEFAULT_RECYCLE_AFTER_STACK_KEYS = 8192;
/** A window line larger than this (far beyond any real window) is treated as garbage rather than buffered. */
const MAX_LINE_CHARS = 128 * 1024 * 1024;

export interface BpftraceCaptureOptions extends CaptureSettings {
  log: Logger;
  bpftracePath?: string;
  programPath?: string;
  backoff?: BackoffOptions;
  recycleAfterStackKeys?: number;
}

export class BpftraceCapture implements CaptureBackend {
  readonly name = 'bpftrace' as const;
  private readonly log: Logger;
  private readonly supervisor: ChildSupervisor;
  private readonly assembler = new BpftraceWindowAssembler();
  private readonly recycleAfterStackKeys: number;
  private lines = new LineSplitter(MAX_LINE_CHARS);
  private stackKeysSinceSpawn = 0;
  /** Set once this child's output proved unparseable; the rest of it is ignored until the restart. */
  private discarding = false;
  /** Set by stop(): the partial window bpftrace prints as it exits is then wanted. */
  private stopping = false;
  private onWindow: ((window: CapturedWindow) => void) | undefined;

  constructor(opts: BpftraceCaptureOptions) {
    const settings = validateCaptureSettings(opts);
    const programPath = opts.programPath ?? ONCPU_PROGRAM_PATH;
    if (!existsSync(programPath)) throw new Error(`bpftrace program ${programPath} is missing: the agent's bpf/ directory must sit beside dist/`);
    this.log = opts.log;
    this.recycleAfterStackKeys = opts.recycleAfterStackKeys ?? DEFAULT_RECYCLE_AFTER_STACK_KEYS;
    this.supervisor = new ChildSupervisor({
      name: 'bpftrace',
      command: opts.bpftracePath ?? 'bpftrace',
      // Only validated integers reach the program, as positional parameters.
      args: ['-f', 'json', '-B', 'line', programPath, String(settings.frequencyHz), String(settings.windowSeconds), String(settings.pid ?? 0)],
      env: bpftraceEnvironment(settings),
      log: opts.log,
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
      onSpawn: () => {
        this.lines = new LineSplitter(MAX_LINE_CHARS);
        this.assembler.reset();
        this.stackKeysSinceSpawn = 0;
        this.discarding = false;
      },
      onStdout: (chunk) => this.onStdout(chunk),
    });
  }

  /** Times bpftrace was restarted after dying or printing garbage. */
  get restarts(): number {
    return this.supervisor.restarts;
  }

  /** The running bpftrace's pid, if one is running. */
  get childPid(): number | undefined {
    return this.supervisor.childPid;
  }

  start(onWindow: (window: CapturedWindow) => void): void {
    this.onWindow = onWindow;
    this.supervisor.start();
  }

  /** bpftrace prints the partial window when it gets SIGTERM; it is delivered before this resolves. */
  stop(): Promise<void> {
    this.stopping = true;
    return this.supervisor.stop();
  }

  private onStdout(chunk: Buffer): void {
    if (this.discarding) return;
    const lines = this.lines.push(chunk);
    if (lines === undefined) {
      this.discardOutput(`a line longer than ${MAX_LINE_CHARS} characters`);
      return;
    }
    for (const line of lines) {
      if (line.trim() !== '') this.onRecord(parseBpftraceLine(line));
      if (this.discarding) return;
    }
  }

  private onRecord(record: BpftraceRecord): void {
    switch (record.kind) {
      case 'malformed':
        this.discardOutput(record.reason);
        return;
      case 'samples':
        if (record.skippedEntries > 0) {
          this.log.warn({ skipped: record.skippedEntries, firstReason: record.firstSkipReason }, 'skipped unparseable bpftrace stack entries');
        }
        this.stackKeysSinceSpawn += record.stacks.length + record.skippedEntries;
        break;
      case 'lost-events':
        this.log.warn({ lostEvents: record.count }, 'bpftrace lost output events');
        break;
      default:
        break;
    }
    const window = this.assembler.accept(record);
    // A partial window from a bpftrace being replaced would be a sliver of a window: only a stop keeps it.
    if (window && (record.kind === 'window-end' || this.stopping)) this.deliver(window);
  }

  private deliver(window: CapturedWindow): void {
    this.supervisor.markHealthy();
    try {
      this.onWindow?.(window);
    } catch (err) {
      this.log.error({ err }, 'window handler failed');
    }
    if (this.stackKeysSinceSpawn >= this.recycleAfterStackKeys) {
      // Right after a readout the sample map is empty, so replacing bpftrace now loses the least.
      this.supervisor.recycle(`${this.stackKeysSinceSpawn} stack keys since start; emptying the stack-id map`);
    }
  }

  private discardOutput(reason: string): void {
    this.log.warn({ reason }, 'unparseable bpftrace output; restarting bpftrace');
    this.discarding = true;
    this.assembler.reset();
    this.supervisor.restartBecause('unparseable output');
  }
}

function bpftraceEnvironment(settings: CaptureSettings): Record<string, string> {
  // One window can hold at most frequency × window × CPUs distinct keys; bpftrace's default of 4096 drops the rest.
  const keysPerWindow = settings.frequencyHz * settings.windowSeconds * availableParallelism();
  return {
    // The agent symbolizes user stacks itself; bpftrace resolving them at every print costs far more CPU than sampling.
    BPFTRACE_NO_USER_SYMBOLS: '1',
    BPFTRACE_MAP_KEYS_MAX: String(Math.min(65_536, Math.max(4_096, keysPerWindow))),
  };
}

/** Splits a byte stream into UTF-8 lines, refusing to buffer a line beyond a bound. */
class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private pending: string[] = [];
  private pendingChars = 0;

  constructor(private readonly maxLineChars: number) {}

  /** Complete lines in this chunk, or undefined when a line outgrew the bound. */
  push(chunk: Buffer): string[] | undefined {
    const text = this.decoder.write(chunk);
    const lines: string[] = [];
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      this.pending.push(text.slice(start, nl));
      lines.push(this.pending.join(''));
      this.pending = [];
      this.pendingChars = 0;
      start = nl + 1;
    }
    const rest = text.slice(start);
    this.pendingChars += rest.length;
    if (this.pendingChars > this.maxLineChars) return undefined;
    if (rest) this.pending.push(rest);
    return lines;
  }
}
