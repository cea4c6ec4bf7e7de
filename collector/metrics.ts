// The collector's Prometheus metrics, served on the HTTP port at /metrics.
// A registry of its own (not prom-client's global one), so two collectors in
// one process (tests) do not share series.
import { Gauge, Registry } from 'prom-client';
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

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text a scrape gets. */
  exposition(): Promise<string> {
    return this.registry.metrics();
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
