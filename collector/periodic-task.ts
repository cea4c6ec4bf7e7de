// A background job of the collector: run first after a delay, then again an
// interval after each run ends, so runs never overlap. A failed run is logged
// and the schedule goes on. stop() cancels the next run and waits for the one
// in progress, so the store can be closed after it.
import type { Logger } from 'pino';

export interface PeriodicTaskOptions {
  run: () => Promise<unknown>;
  firstAfterMs: number;
  everyMs: number;
  log: Logger;
  /** Logged with the error when a run fails. */
  failureMessage: string;
}

export class PeriodicTask {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly opts: PeriodicTaskOptions) {}

  start(): void {
    this.schedule(this.opts.firstAfterMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.opts
        .run()
        .then(
          () => undefined,
          (err: unknown) => this.opts.log.error({ err }, this.opts.failureMessage),
        )
        .finally(() => this.schedule(this.opts.everyMs));
    }, delayMs);
    this.timer.unref();
  }
}
