// The agent daemon: wires capture → symbolize → encode → send, once per window.
import type { Logger } from 'pino';
import { startHttpServer } from '../collector/http-server.js';
import { encodeProfileGz } from '../proto/pprof.js';
import type { CollectorCredentials, ProcessInfo, WindowUpload } from '../proto/wire.js';
import { AgentMetrics } from './agent-metrics.js';
import type { CaptureBackend, CapturedWindow } from './capture-types.js';
import { createCaptureBackend, selectCaptureBackend } from './capture-select.js';
import { Demangler } from './demangler.js';
import { monotonicToUnixNanos } from './clock.js';
import { prepareHost } from './host-prep.js';
import { HotProcessTracker, type ProcessWindowSummary } from './hot-process-tracker.js';
import { OnDemandCaptures } from './on-demand-capture.js';
import { describeProcesses } from './process-descriptions.js';
import { clockTicksPerSecond } from './libc.js';
import { readProcessMemory } from './process-memory.js';
import { ProcessSignalsCollector } from './process-signals-collector.js';
import { encodeWindow } from './profile-encoder.js';
import { SelfCostMeter } from './self-cost.js';
import { spinHintShare } from './spin-hint.js';
import { Symbolizer } from './symbolizer.js';
import { Uploader } from './uploader.js';
import { WindowSpool } from './window-spool.js';

export const AGENT_VERSION = '0.1.0';

export interface AgentOptions {
  collectorAddress: string;
  host: string;
  frequencyHz: number;
  windowSeconds: number;
  hotThreshold: number;
  log: Logger;
  backend?: 'bpftrace' | 'perf';
  /** Directory of the on-disk spool: unacked windows, agent id and next sequence number. */
  spoolDir: string;
  /** Bound on the spooled windows' total size; the oldest are dropped beyond it. */
  spoolMaxBytes?: number;
  /** host:port for /healthz and /metrics; port 0 picks a free one. */
  httpAddress: string;
  /** TLS and the agent token; plaintext without a token when absent. */
  credentials?: CollectorCredentials;
}

export interface RunningAgent {
  readonly agentId: string;
  readonly backend: CaptureBackend['name'];
  /** host:port the HTTP server actually bound. */
  readonly httpAddress: string;
  /** Spools the partial window, stops the capture child and the uploader. */
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
  // Windows are spooled before they are sent; the spool also keeps the agent id and sequence across restarts.
  const spool = new WindowSpool({
    dir: opts.spoolDir,
    host: opts.host,
    ...(opts.spoolMaxBytes !== undefined ? { maxBytes: opts.spoolMaxBytes } : {}),
    onDrop: (drop) => log.warn(drop, 'dropped a spooled window before the collector acked it'),
  });
  const agentId = spool.agentId;
  const metrics = new AgentMetrics({ spool, capture: backend });
  const symbolizer = new Symbolizer();
  const demangler = new Demangler({ log });
  const tracker = new HotProcessTracker({
    clockTicksPerSecond: clockTicksPerSecond(),
    hotThreshold: opts.hotThreshold,
    // Read maps and symbols while the process is alive, so it can still be named if it exits mid-window.
    onFirstActive: (pid) => symbolizer.rememberProcess(pid),
  });
  const signals = new ProcessSignalsCollector({ log, clockTicksPerSecond: clockTicksPerSecond() });
  const selfCost = new SelfCostMeter(clockTicksPerSecond());
  const onDemand = new OnDemandCaptures({
    log,
    createBackend: (settings) => createCaptureBackend(backend.name, settings, log.child({ component: 'on-demand-capture' })),
    rememberProcess: (pid) => symbolizer.rememberProcess(pid),
    reportFailure: (requestId, reason) => uploader.reportCaptureFailure(requestId, reason),
    deliver: (request, window) => {
      const endUnixNanos = monotonicToUnixNanos(window.endMonotonicNs);
      const hot = new Set(tracker.currentlyHot().map((p) => p.pid));
      const processes = describeProcesses(window, new Map(), tracker);
      for (const p of processes.values()) p.hot = hot.has(p.pid);
      const upload = encodeAndSend(window, processes, {
        frequencyHz: request.frequencyHz,
        startUnixNanos: endUnixNanos - BigInt(request.durationSeconds) * 1_000_000_000n,
        endUnixNanos,
        extra: { captureRequestId: request.requestId },
      });
      log.info({ requestId: request.requestId, seq: upload.seq, bytes: upload.pprofGz.length }, 'on-demand capture queued for upload');
    },
  });
  const uploader = new Uploader({
    collectorAddress: opts.collectorAddress,
    host: opts.host,
    agentId,
    version: AGENT_VERSION,
    queue: spool,
    log,
    onAck: (ack, sentAtMs) => metrics.windowAcked(ack, sentAtMs),
    onCaptureRequest: (request) => onDemand.run(request),
    credentials: opts.credentials,
  });

  /** Symbolizes and encodes a window, then spools and sends it. */
  const encodeAndSend = (
    window: CapturedWindow,
    processes: Map<number, ProcessInfo>,
    w: { frequencyHz: number; startUnixNanos: bigint; endUnixNanos: bigint; extra: Pick<WindowUpload, 'cost' | 'captureRequestId'> },
  ): WindowUpload => {
    const profile = encodeWindow(window, symbolizer, {
      frequencyHz: w.frequencyHz,
      startUnixNanos: w.startUnixNanos,
      endUnixNanos: w.endUnixNanos,
      processComm: (pid) => processes.get(pid)?.comm,
      isHot: (pid) => processes.get(pid)?.hot ?? false,
      demangle: (names) => demangler.demangle(names),
    });
    const upload: WindowUpload = {
      host: opts.host,
      agentId,
      seq: spool.allocateSeq(),
      startUnixNanos: w.startUnixNanos,
      endUnixNanos: w.endUnixNanos,
      pprofGz: encodeProfileGz(profile),
      processes: [...processes.values()],
      ...w.extra,
    };
    uploader.enqueue(upload);
    return upload;
  };

  let lastEndUnixNanos: bigint | null = null;

  const onWindow = (window: CapturedWindow): void => {
    const started = process.hrtime.bigint();
    tracker.scan();
    const summaries = new Map<number, ProcessWindowSummary>(tracker.endWindow().map((s) => [s.pid, s]));
    const windowSignals = signals.endWindow([...summaries.values()].filter((s) => s.hot), tracker.currentlyHot());
    const endUnixNanos = monotonicToUnixNanos(window.endMonotonicNs);
    const startUnixNanos = lastEndUnixNanos ?? endUnixNanos - BigInt(opts.windowSeconds) * 1_000_000_000n;
    lastEndUnixNanos = endUnixNanos;

    const processes = describeProcesses(window, summaries, tracker);
    for (const [pid, s] of windowSignals.byPid) {
      const p = processes.get(pid);
      if (p) p.signals = { ...s, spinHintShare: spinHintShare(pid, window.stacks, readProcessMemory) };
    }
    const upload = encodeAndSend(window, processes, { frequencyHz: opts.frequencyHz, startUnixNanos, endUnixNanos, extra: { cost: selfCost.endWindow(windowSignals.cpuSeconds) } });
    metrics.windowCaptured();
    const keep = tracker.livePids();
    if (onDemand.targetPid !== undefined) keep.add(onDemand.targetPid);
    symbolizer.forgetProcessesExcept(keep);
    log.info(
      {
        seq: upload.seq,
        stacks: window.stacks.length,
        samples: window.stacks.reduce((n, s) => n + s.count, 0),
        processes: upload.processes.length,
        hot: upload.processes.filter((p) => p.hot).map((p) => `${p.comm}/${p.pid}`),
        bytes: upload.pprofGz.length,
        encodeMs: Number(process.hrtime.bigint() - started) / 1e6,
        cost: upload.cost,
      },
      'window captured',
    );
  };

  let http: Awaited<ReturnType<typeof startHttpServer>>;
  try {
    http = await startHttpServer({ address: opts.httpAddress, metrics, log: log.child({ component: 'http' }) });
  } catch (err) {
    spool.close();
    throw err;
  }
  tracker.scan();
  const scanTimer = setInterval(() => {
    tracker.scan();
    signals.onScan(tracker.currentlyHot());
  }, SCAN_INTERVAL_MS);
  uploader.start();
  backend.start(onWindow);
  log.info({ agentId, spooled: spool.windows, backend: backend.name, collector: opts.collectorAddress, frequencyHz: opts.frequencyHz, windowSeconds: opts.windowSeconds }, 'agent started');

  return {
    agentId,
    backend: backend.name,
    httpAddress: http.address,
    async stop(): Promise<void> {
      clearInterval(scanTimer);
      await onDemand.stop();
      // The backend hands over the partial window as it stops; it is spooled and sent after the next start.
      await backend.stop();
      await signals.stop();
      await uploader.stop();
      spool.close();
      await http.close();
    },
  };
}
