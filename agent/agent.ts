// The agent daemon: wires capture → symbolize → encode → send, once per window.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { encodeProfileGz } from '../proto/pprof.js';
import type { ProcessInfo, WindowUpload } from '../proto/wire.js';
import type { CaptureBackend, CapturedWindow } from './capture-types.js';
import { selectCaptureBackend } from './capture-select.js';
import { monotonicToUnixNanos } from './clock.js';
import { prepareHost } from './host-prep.js';
import { HotProcessTracker, type ProcessWindowSummary } from './hot-process-tracker.js';
import { clockTicksPerSecond } from './libc.js';
import { encodeWindow } from './profile-encoder.js';
import { Symbolizer } from './symbolizer.js';
import { Uploader } from './uploader.js';
import { MemoryWindowQueue } from './window-queue.js';

export const AGENT_VERSION = '0.1.0';

export interface AgentOptions {
  collectorAddress: string;
  host: string;
  frequencyHz: number;
  windowSeconds: number;
  hotThreshold: number;
  log: Logger;
  backend?: 'bpftrace' | 'perf';
  /** Windows kept in memory while the collector is unreachable. */
  maxQueuedWindows?: number;
}

export interface RunningAgent {
  readonly agentId: string;
  readonly backend: CaptureBackend['name'];
  stop(): Promise<void>;
}

const SCAN_INTERVAL_MS = 1000;

export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  const { log } = opts;
  prepareHost(log);
  const backend = selectCaptureBackend({
    frequencyHz: opts.frequencyHz,
    windowSeconds: opts.windowSeconds,
    log,
    ...(opts.backend ? { prefer: opts.backend } : {}),
  });
  const agentId = `${opts.host}/${randomUUID()}`;
  const symbolizer = new Symbolizer();
  const tracker = new HotProcessTracker({
    clockTicksPerSecond: clockTicksPerSecond(),
    hotThreshold: opts.hotThreshold,
    // Read maps and symbols while the process is alive, so it can still be named if it exits mid-window.
    onFirstActive: (pid) => symbolizer.rememberProcess(pid),
  });
  const queue = new MemoryWindowQueue(opts.maxQueuedWindows ?? 8640, (w) =>
    log.warn({ seq: w.seq }, 'window queue full: dropped the oldest window'),
  );
  const uploader = new Uploader({ collectorAddress: opts.collectorAddress, host: opts.host, agentId, version: AGENT_VERSION, queue, log });

  let seq = 0;
  let lastEndUnixNanos: bigint | null = null;

  const onWindow = (window: CapturedWindow): void => {
    const started = process.hrtime.bigint();
    tracker.scan();
    const summaries = new Map<number, ProcessWindowSummary>(tracker.endWindow().map((s) => [s.pid, s]));
    const endUnixNanos = monotonicToUnixNanos(window.endMonotonicNs);
    const startUnixNanos = lastEndUnixNanos ?? endUnixNanos - BigInt(opts.windowSeconds) * 1_000_000_000n;
    lastEndUnixNanos = endUnixNanos;

    const processes = describeProcesses(window, summaries, tracker);
    const profile = encodeWindow(window, symbolizer, {
      frequencyHz: opts.frequencyHz,
      startUnixNanos,
      endUnixNanos,
      processComm: (pid) => processes.get(pid)?.comm,
      isHot: (pid) => processes.get(pid)?.hot ?? false,
    });
    const upload: WindowUpload = {
      host: opts.host,
      agentId,
      seq: ++seq,
      startUnixNanos,
      endUnixNanos,
      pprofGz: encodeProfileGz(profile),
      processes: [...processes.values()],
    };
    uploader.enqueue(upload);
    symbolizer.forgetProcessesExcept(tracker.livePids());
    log.info(
      {
        seq: upload.seq,
        stacks: window.stacks.length,
        samples: window.stacks.reduce((n, s) => n + s.count, 0),
        processes: upload.processes.length,
        hot: upload.processes.filter((p) => p.hot).map((p) => `${p.comm}/${p.pid}`),
        bytes: upload.pprofGz.length,
        encodeMs: Number(process.hrtime.bigint() - started) / 1e6,
      },
      'window captured',
    );
  };

  tracker.scan();
  const scanTimer = setInterval(() => tracker.scan(), SCAN_INTERVAL_MS);
  uploader.start();
  backend.start(onWindow);
  log.info({ agentId, backend: backend.name, collector: opts.collectorAddress, frequencyHz: opts.frequencyHz, windowSeconds: opts.windowSeconds }, 'agent started');

  return {
    agentId,
    backend: backend.name,
    async stop(): Promise<void> {
      clearInterval(scanTimer);
      await backend.stop();
      await uploader.stop();
    },
  };
}

/** Every process that was sampled or used CPU, with the metadata the collector stores. */
function describeProcesses(
  window: CapturedWindow,
  summaries: Map<number, ProcessWindowSummary>,
  tracker: HotProcessTracker,
): Map<number, ProcessInfo> {
  const out = new Map<number, ProcessInfo>();
  for (const s of summaries.values()) {
    out.set(s.pid, { pid: s.pid, comm: s.comm, exe: s.exe, cmdline: s.cmdline, cgroup: s.cgroup, containerId: s.containerId, hot: s.hot, cpuCores: s.cpuCores });
  }
  for (const stack of window.stacks) {
    if (out.has(stack.pid)) continue;
    const meta = tracker.metadataFor(stack.pid);
    const comm = meta?.comm ?? window.threadNames.get(stack.tid) ?? '';
    out.set(stack.pid, {
      pid: stack.pid,
      comm,
      exe: meta?.exe ?? '',
      cmdline: meta?.cmdline ?? '',
      cgroup: meta?.cgroup ?? '',
      containerId: meta?.containerId ?? '',
      hot: false,
      cpuCores: 0,
    });
  }
  return out;
}
