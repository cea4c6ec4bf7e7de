// Runs validated on-demand capture requests, one at a time: a second capture
// backend (the fixed on-CPU program, with the request's numbers) beside the
// continuous one, for one window of the requested length.
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { ValidCaptureRequest } from './capture-request.js';
import type { CaptureSettings } from './capture-settings.js';
import type { CaptureBackend, CapturedWindow } from './capture-types.js';

export interface OnDemandCaptureOptions {
  log: Logger;
  /** A backend of the kind the agent runs, with these settings. */
  createBackend(settings: CaptureSettings): CaptureBackend;
  /** The capture's one window, to encode and upload as the request's answer. */
  deliver(request: ValidCaptureRequest, window: CapturedWindow): void;
  /** The request will bring no upload; tell the collector why. Resolves once the message is on its way. */
  reportFailure(requestId: string, reason: string): Promise<void>;
  /** Called before the backend starts, so a target that exits mid-capture can still be symbolized. */
  rememberProcess(pid: number): void;
  /** Added to the duration before a capture that brought no window is given up: the tool's start-up. */
  graceMs?: number;
}

interface RunningCapture {
  request: ValidCaptureRequest;
  backend: CaptureBackend;
  timer: NodeJS.Timeout;
}

const DEFAULT_GRACE_MS = 30_000;

export class OnDemandCaptures {
  private running: RunningCapture | null = null;

  constructor(private readonly opts: OnDemandCaptureOptions) {}

  /** The pid being captured, whose symbols must stay cached even if it exits. */
  get targetPid(): number | undefined {
    return this.running?.request.pid || undefined;
  }

  run(request: ValidCaptureRequest): void {
    const { log } = this.opts;
    if (this.running) {
      void this.fail(request, `capture ${this.running.request.requestId} is still running on this agent; captures run one at a time`);
      return;
    }
    if (request.pid !== 0 && !existsSync(`/proc/${request.pid}`)) {
      void this.fail(request, `pid ${request.pid} is not running on this host`);
      return;
    }
    if (request.pid !== 0) this.opts.rememberProcess(request.pid);
    let backend: CaptureBackend;
    try {
      backend = this.opts.createBackend({ frequencyHz: request.frequencyHz, windowSeconds: request.durationSeconds, pid: request.pid });
    } catch (err) {
      void this.fail(request, `could not start the capture: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const waitMs = request.durationSeconds * 1000 + (this.opts.graceMs ?? DEFAULT_GRACE_MS);
    const timer = setTimeout(() => {
      if (this.finish(request)) void this.fail(request, `${backend.name} produced no window within ${Math.round(waitMs / 1000)} s`);
    }, waitMs);
    timer.unref();
    this.running = { request, backend, timer };
    log.info({ ...request, backend: backend.name }, 'on-demand capture started');
    backend.start((window) => {
      // The first window is the capture; a partial one printed as the backend stops is not wanted.
      if (!this.finish(request)) return;
      log.info({ requestId: request.requestId, stacks: window.stacks.length, samples: window.stacks.reduce((n, s) => n + s.count, 0) }, 'on-demand capture finished');
      this.opts.deliver(request, window);
    });
  }

  /** Abandons a running capture (the agent is stopping), telling the collector. */
  async stop(): Promise<void> {
    const running = this.running;
    const stopped = running && this.finish(running.request);
    if (!running || !stopped) return;
    await Promise.all([this.fail(running.request, 'the agent is stopping'), stopped]);
  }

  /** Ends the running capture if it is this request's, resolving once its backend has stopped; null if it already ended. */
  private finish(request: ValidCaptureRequest): Promise<void> | null {
    const running = this.running;
    if (!running || running.request !== request) return null;
    this.running = null;
    clearTimeout(running.timer);
    return running.backend.stop().catch((err: unknown) => this.opts.log.warn({ err, requestId: request.requestId }, 'stopping the capture backend failed'));
  }

  private fail(request: ValidCaptureRequest, reason: string): Promise<void> {
    this.opts.log.warn({ requestId: request.requestId, reason }, 'on-demand capture not run');
    return this.opts.reportFailure(request.requestId, reason);
  }
}
