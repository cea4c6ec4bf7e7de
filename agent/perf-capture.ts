// The perf capture backend, for hosts without bpftrace: one long-running
// `perf record` streams samples to the agent (pipe mode, unbuffered), and the
// agent counts them into windows itself, reading the stream a few times a
// second. Thread names come from the COMM and FORK records perf writes for
// existing and new threads.
import type { Logger } from 'pino';
import type { CaptureBackend, CapturedWindow, RawStack } from './capture-types.js';
import { validateCaptureSettings, type CaptureSettings } from './capture-settings.js';
import { ChildSupervisor, type BackoffOptions } from './child-supervisor.js';
import { monotonicNowNanos } from './clock.js';
import { PerfPipeParser, type PerfRecord } from './perf-data-parser.js';

const STDOUT_POLL_MS = 250;

export interface PerfCaptureOptions extends CaptureSettings {
  log: Logger;
  perfPath?: string;
  backoff?: BackoffOptions;
}

function perfRecordArgs(settings: CaptureSettings): string[] {
  return [
    'record',
    // cpu-clock works in VMs without a hardware PMU, and samples at the same rate everywhere.
    '-e', 'cpu-clock',
    '-F', String(settings.frequencyHz),
    // One process for an on-demand capture, else the whole host.
    ...(settings.pid ? ['-p', String(settings.pid)] : ['-a']),
    '-g',
    // Sample times in CLOCK_MONOTONIC, like bpftrace's nsecs.
    '-k', 'mono',
    // Without this perf holds samples until its ring buffers are half full, which at 19 Hz takes minutes.
    '--no-buffering',
    '--no-buildid', '--no-buildid-cache',
    // Errors still reach stderr; the progress chatter at exit does not.
    '-q',
    '-o', '-',
  ];
}

export class PerfCapture implements CaptureBackend {
  readonly name = 'perf' as const;
  private readonly log: Logger;
  private readonly windowMs: number;
  private readonly supervisor: ChildSupervisor;
  private parser = new PerfPipeParser();
  /** tid → comm as of the latest COMM/FORK record. */
  private threadComms = new Map<number, string>();
  private exitedTids: number[] = [];
  private window = new WindowCounts();
  private discarding = false;
  private windowTimer: NodeJS.Timeout | undefined;
  private onWindow: ((window: CapturedWindow) => void) | undefined;

  constructor(opts: PerfCaptureOptions) {
    const settings = validateCaptureSettings(opts);
    this.log = opts.log;
    this.windowMs = settings.windowSeconds * 1000;
    this.supervisor = new ChildSupervisor({
      name: 'perf',
      command: opts.perfPath ?? 'perf',
      args: perfRecordArgs(settings),
      log: opts.log,
      // perf writes every record on its own; reading a few times a second batches them.
      stdoutPollMs: STDOUT_POLL_MS,
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
      onSpawn: () => {
        // A new perf announces every existing thread again; a crashed child's partial window is dropped.
        this.parser = new PerfPipeParser();
        this.threadComms = new Map();
        this.exitedTids = [];
        this.window = new WindowCounts();
        this.discarding = false;
      },
      onStdout: (chunk) => this.onStdout(chunk),
    });
  }

  /** Times perf was restarted after dying or writing an unparseable stream. */
  get restarts(): number {
    return this.supervisor.restarts;
  }

  get childPid(): number | undefined {
    return this.supervisor.childPid;
  }

  start(onWindow: (window: CapturedWindow) => void): void {
    this.onWindow = onWindow;
    this.supervisor.start();
    this.windowTimer ??= setInterval(() => this.closeWindow(), this.windowMs);
  }

  /** Delivers the partial window counted so far, then stops perf. */
  async stop(): Promise<void> {
    clearInterval(this.windowTimer);
    this.windowTimer = undefined;
    this.closeWindow();
    await this.supervisor.stop();
  }

  private onStdout(chunk: Buffer): void {
    if (this.discarding) return;
    let records: PerfRecord[];
    try {
      records = this.parser.push(chunk);
    } catch (err) {
      // PerfDataError is the expected case; anything else is a parser bug, which must not take the agent down either.
      this.log.warn({ err }, 'unparseable perf stream; restarting perf');
      this.discarding = true;
      this.supervisor.restartBecause('unparseable output');
      return;
    }
    for (const record of records) this.onRecord(record);
  }

  private onRecord(record: PerfRecord): void {
    switch (record.kind) {
      case 'sample':
        // pid 0 is the idle task.
        if (record.pid !== 0) this.window.add(record, this.threadComms.get(record.tid));
        return;
      case 'comm':
        this.threadComms.set(record.tid, record.comm);
        return;
      case 'fork': {
        const comm = this.threadComms.get(record.parentTid);
        if (comm !== undefined) this.threadComms.set(record.tid, comm);
        return;
      }
      case 'exit':
        // Forgotten only when the window closes: its last samples may arrive after the exit record.
        this.exitedTids.push(record.tid);
        return;
      case 'lost':
        this.log.warn({ lost: record.count.toString() }, 'perf lost samples');
        return;
    }
  }

  private closeWindow(): void {
    // Without a live, streaming perf an empty window would wrongly claim an idle host.
    if (this.supervisor.childPid === undefined || !this.parser.started || this.discarding) return;
    const window = this.window.finish(monotonicNowNanos());
    this.window = new WindowCounts();
    for (const tid of this.exitedTids) this.threadComms.delete(tid);
    this.exitedTids = [];
    this.supervisor.markHealthy();
    try {
      this.onWindow?.(window);
    } catch (err) {
      this.log.error({ err }, 'window handler failed');
    }
  }
}

/** Identical stacks of one thread in a window, counted. */
class WindowCounts {
  private readonly stacks = new Map<string, RawStack>();
  private readonly threadNames = new Map<number, string>();

  add(sample: { pid: number; tid: number; kernel: bigint[]; user: bigint[] }, comm: string | undefined): void {
    const key = `${sample.pid}/${sample.tid}/${sample.kernel.join(',')}/${sample.user.join(',')}`;
    const stack = this.stacks.get(key);
    if (stack) stack.count++;
    else this.stacks.set(key, { pid: sample.pid, tid: sample.tid, kernel: sample.kernel, user: sample.user, count: 1 });
    if (comm !== undefined) this.threadNames.set(sample.tid, comm);
  }

  finish(endMonotonicNs: bigint): CapturedWindow {
    return { endMonotonicNs, stacks: [...this.stacks.values()], threadNames: this.threadNames };
  }
}
