// Deletes windows and episodes older than --retention in the background. Each
// batch is one short transaction, and the event loop runs between batches, so
// ingest (which shares the store's one SQLite connection) waits for at most
// one batch, never for a whole sweep. Freed pages are reused by new windows.
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from 'pino';
import { PeriodicTask } from './periodic-task.js';
import type { ProfileStore, RetentionBatch } from './store.js';

export const DEFAULT_RETENTION_NS = 7n * 24n * 3600n * 1_000_000_000n;
const DEFAULT_INTERVAL_MS = 10 * 60_000;
/** After a restart the agents first flush their spools; the first sweep waits for that burst to pass. */
const FIRST_SWEEP_DELAY_MS = 60_000;
const DEFAULT_BATCH_ROWS = 500;

export interface RetentionOptions {
  store: Pick<ProfileStore, 'deleteBatchBefore'>;
  /** Windows that started, and closed episodes that ended, longer ago than this are deleted. */
  maxAgeNs: bigint;
  log: Logger;
  /** Called after each batch that deleted something. */
  onDeleted?: (batch: RetentionBatch) => void;
  /** Time between sweeps. */
  intervalMs?: number;
  /** Most windows (and most episodes) one batch deletes. */
  batchRows?: number;
  /** Wall clock in unix nanoseconds. */
  nowNs?: () => bigint;
}

export class Retention {
  private readonly schedule: PeriodicTask;
  private sweeping: Promise<RetentionBatch> | undefined;
  private stopped = false;
  private readonly batchRows: number;
  private readonly nowNs: () => bigint;

  constructor(private readonly opts: RetentionOptions) {
    if (opts.maxAgeNs <= 0n) throw new Error(`retention must be positive, not ${opts.maxAgeNs} ns`);
    this.batchRows = opts.batchRows ?? DEFAULT_BATCH_ROWS;
    this.nowNs = opts.nowNs ?? (() => BigInt(Date.now()) * 1_000_000n);
    this.schedule = new PeriodicTask({
      run: () => this.sweep(),
      firstAfterMs: FIRST_SWEEP_DELAY_MS,
      everyMs: opts.intervalMs ?? DEFAULT_INTERVAL_MS,
      log: opts.log,
      failureMessage: 'retention sweep failed; retrying at the next interval',
    });
  }

  /** Sweeps a minute after startup and then every interval. */
  start(): void {
    this.schedule.start();
  }

  /** Deletes everything older than the retention, batch by batch; resolves with the totals. */
  sweep(): Promise<RetentionBatch> {
    this.sweeping ??= this.deleteOldRows().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  /** Stops scheduling and waits for the batch in progress, so the store can be closed after. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.schedule.stop();
    await this.sweeping?.catch(() => undefined);
  }

  private async deleteOldRows(): Promise<RetentionBatch> {
    const cutoffNs = this.nowNs() - this.opts.maxAgeNs;
    const total: RetentionBatch = { windows: 0, captures: 0, episodes: 0 };
    while (!this.stopped) {
      const batch = await this.opts.store.deleteBatchBefore(cutoffNs, this.batchRows);
      total.windows += batch.windows;
      total.captures += batch.captures;
      total.episodes += batch.episodes;
      const deleted = batch.windows + batch.captures + batch.episodes;
      if (deleted > 0) this.opts.onDeleted?.(batch);
      if (Math.max(batch.windows, batch.captures, batch.episodes) < this.batchRows) break;
      // Lets the windows that arrived meanwhile be stored before the next batch.
      await nextTurn();
    }
    if (total.windows + total.captures + total.episodes > 0) {
      this.opts.log.info({ ...total, before: new Date(Number(cutoffNs / 1_000_000n)).toISOString() }, 'retention deleted old windows, captures and episodes');
    }
    return total;
  }
}
