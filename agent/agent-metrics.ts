// The agent's Prometheus self-metrics, served on its HTTP port at /metrics:
// what it captured, spooled, sent and dropped, how long acks take, how often
// its capture child had to be restarted, and its own CPU and memory.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { UploadAck } from '../proto/wire.js';
import type { SpoolDropReason } from './window-spool.js';

/** Totals kept by the spool and the capture backend, read at scrape time. */
export interface AgentMetricSources {
  spool: {
    readonly written: number;
    readonly droppedBy: Readonly<Record<SpoolDropReason, number>>;
    readonly bytes: number;
    readonly windows: number;
  };
  capture: { readonly name: string; readonly restarts: number };
}

type Labels = Record<string, string>;

export class AgentMetrics {
  private readonly registry = new Registry();
  private readonly captured = new Counter({
    name: 'hotloop_agent_windows_captured_total',
    help: 'Windows read from the capture backend and encoded',
    registers: [this.registry],
  });
  private readonly sent = new Counter({
    name: 'hotloop_agent_windows_sent_total',
    help: 'Windows the collector acknowledged, by result (stored, duplicate of a window stored before, refused)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  private readonly sendLatency = new Histogram({
    name: 'hotloop_agent_send_latency_seconds',
    help: 'Time from sending a window to its ack (the collector acks after its store commit)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  constructor(sources: AgentMetricSources) {
    const { spool, capture } = sources;
    mirroredCounter(this.registry, 'hotloop_agent_windows_spooled_total', 'Windows written to the on-disk spool', [], () => [[{}, spool.written]]);
    mirroredCounter(this.registry, 'hotloop_agent_windows_dropped_total', 'Windows dropped before the collector acknowledged them, by reason', ['reason'], () =>
      Object.entries(spool.droppedBy).map(([reason, n]) => [{ reason }, n]),
    );
    mirroredCounter(this.registry, 'hotloop_agent_capture_restarts_total', 'Unplanned restarts of the capture child (bpftrace or perf)', ['backend'], () => [
      [{ backend: capture.name }, capture.restarts],
    ]);
    new Gauge({
      name: 'hotloop_agent_spool_bytes',
      help: 'Size of the windows waiting in the spool for an ack',
      registers: [this.registry],
      collect() {
        this.set(spool.bytes);
      },
    });
    new Gauge({
      name: 'hotloop_agent_spool_windows',
      help: 'Windows waiting in the spool for an ack',
      registers: [this.registry],
      collect() {
        this.set(spool.windows);
      },
    });
    // process_cpu_seconds_total, process_resident_memory_bytes and the rest: the agent's own cost.
    collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  exposition(): Promise<string> {
    return this.registry.metrics();
  }

  windowCaptured(): void {
    this.captured.inc();
  }

  windowAcked(ack: UploadAck, sentAtMs: number | undefined): void {
    this.sent.inc({ result: ack.duplicate ? 'duplicate' : ack.stored ? 'stored' : 'refused' });
    if (sentAtMs !== undefined) this.sendLatency.observe((Date.now() - sentAtMs) / 1000);
  }
}

/** A counter whose running totals (one per label set) are kept elsewhere: each scrape adds what they grew by since the last. */
function mirroredCounter(registry: Registry, name: string, help: string, labelNames: string[], read: () => [Labels, number][]): void {
  const seen = new Map<string, number>();
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      for (const [labels, total] of read()) {
        const key = JSON.stringify(labels);
        const before = seen.get(key) ?? 0;
        // Adding 0 still makes the series appear before its first event.
        this.inc(labels, Math.max(0, total - before));
        seen.set(key, Math.max(before, total));
      }
    },
  });
}
