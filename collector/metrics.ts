// The collector's Prometheus metrics, served on the HTTP port at /metrics:
// busy loops, and the collector's own health (ingest, store latency, refusals, retention).
// A registry of its own (not prom-client's global one), so two collectors in
// one process (tests) do not share series.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CaptureOutcome } from './capture-broker.js';
import { isReportedBusyLoop } from './episode-tracker.js';
import type { Episode } from './verdict-types.js';

export class CollectorMetrics {
  private readonly registry = new Registry();
  private readonly busyLoop = new Gauge({
    name: 'hotloop_busy_loop',
    help: '1 while the process is in a busy-loop episode of at least two windows; the series is removed when the episode ends',
    labelNames: ['host', 'pid', 'comm', 'kind'] as const,
    registers: [this.registry],
  });
  private readonly ingested = new Counter({
    name: 'hotloop_collector_windows_ingested_total',
    help: 'Windows committed to the store, by result (stored, or duplicate of a window stored before)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  private readonly storeLatency = new Histogram({
    name: 'hotloop_collector_store_latency_seconds',
    help: 'Time to commit one window (and its processes) to the store',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  private readonly rejected = new Counter({
    name: 'hotloop_collector_uploads_rejected_total',
    help: 'Windows refused with a reason in their ack, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly retentionDeleted = new Counter({
    name: 'hotloop_collector_retention_deleted_total',
    help: 'Rows deleted for being older than --retention, by kind (windows, captures, episodes)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  private readonly captures = new Counter({
    name: 'hotloop_collector_captures_total',
    help: 'On-demand capture requests, by how they ended (delivered, agent-failed, timed-out, no-agent, shut-down)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text a scrape gets. */
  exposition(): Promise<string> {
    return this.registry.metrics();
  }

  windowStored(seconds: number, duplicate: boolean): void {
    this.ingested.inc({ result: duplicate ? 'duplicate' : 'stored' });
    this.storeLatency.observe(seconds);
  }

  captureEnded(outcome: CaptureOutcome): void {
    this.captures.inc({ outcome });
  }

  uploadRejected(reason: string): void {
    this.rejected.inc({ reason });
  }

  retentionDeletedRows(kind: 'windows' | 'captures' | 'episodes', rows: number): void {
    this.retentionDeleted.inc({ kind }, rows);
  }

  /** Brings the busy-loop series in line with these episodes' current state. */
  observeEpisodes(episodes: readonly Episode[]): void {
    for (const e of episodes) {
      const labels = { host: e.host, pid: String(e.pid), comm: e.comm, kind: e.kind };
      if (e.open && isReportedBusyLoop(e)) this.busyLoop.set(labels, 1);
      else if (e.verdict === 'busy-loop') this.busyLoop.remove(labels);
    }
  }
}
