// Keeps one capture child process (bpftrace or perf) running: restarts it
// with capped exponential backoff when it dies or its output cannot be
// trusted, logs its stderr within bounds, and stops it SIGTERM-then-SIGKILL.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { PolledPipe } from './polled-pipe.js';

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export interface ChildSupervisorOptions {
  /** Names the child in log lines. */
  name: string;
  command: string;
  args: readonly string[];
  /** Added to the agent's environment. */
  env?: Readonly<Record<string, string>>;
  log: Logger;
  /** Called before each new child's output arrives, to drop state left by the previous one. */
  onSpawn: () => void;
  onStdout: (chunk: Buffer) => void;
  /**
   * Read stdout on this period instead of on every write: for children that
   * write small pieces often, where each event-loop wakeup costs more than the data.
   */
  stdoutPollMs?: number;
  backoff?: BackoffOptions;
  /** How long a child may take to exit after SIGTERM before it gets SIGKILL. */
  stopGraceMs?: number;
  /** Stderr lines logged per child; later ones only count towards the tail kept for the exit log. */
  maxLoggedStderrLines?: number;
}

interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  err?: unknown;
  stderrTail?: string[];
}

const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1_000, maxMs: 60_000 };
const STDERR_TAIL_LINES = 10;
const STDERR_LINE_MAX_CHARS = 500;

export class ChildSupervisor {
  private readonly backoff: BackoffOptions;
  private child: ChildProcess | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private nextDelayMs: number;
  private restartCount = 0;
  private stopping: Promise<void> | undefined;
  /** Set when the current child is being replaced on purpose, not because it failed. */
  private recycling = false;
  private pendingRestartReason: string | undefined;

  constructor(private readonly opts: ChildSupervisorOptions) {
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF;
    this.nextDelayMs = this.backoff.initialMs;
  }

  /** Unplanned restarts so far (crashes and untrusted output; recycling is not counted). */
  get restarts(): number {
    return this.restartCount;
  }

  get childPid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    if (this.child || this.restartTimer || this.stopping) return;
    this.spawnChild();
  }

  /** The child produced a good result: the next failure starts the backoff afresh. */
  markHealthy(): void {
    this.nextDelayMs = this.backoff.initialMs;
  }

  /** Kills the current child because its output cannot be trusted; it comes back after the backoff. */
  restartBecause(reason: string): void {
    if (!this.child || this.stopping) return;
    this.pendingRestartReason ??= reason;
    this.terminate(this.child);
  }

  /** Replaces the current child at once, without backoff and without counting a restart. */
  recycle(reason: string): void {
    if (!this.child || this.stopping) return;
    this.opts.log.info({ child: this.opts.name, reason }, 'replacing capture child');
    this.recycling = true;
    this.terminate(this.child);
  }

  /** Stops the child (if any) and any pending restart; resolves once it has exited. */
  stop(): Promise<void> {
    this.stopping ??= new Promise<void>((resolve) => {
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
      const child = this.child;
      if (!child) return resolve();
      child.once('close', () => resolve());
      this.terminate(child);
    });
    return this.stopping;
  }

  private spawnChild(): void {
    const { name, command, args, log } = this.opts;
    this.opts.onSpawn();
    let stdoutPipe: PolledPipe | undefined;
    let child: ChildProcess;
    try {
      stdoutPipe = this.opts.stdoutPollMs === undefined ? undefined : PolledPipe.open();
      child = spawn(command, args, {
        stdio: ['ignore', stdoutPipe ? stdoutPipe.writeFd : 'pipe', 'pipe'],
        env: { ...process.env, ...this.opts.env },
      });
    } catch (err) {
      stdoutPipe?.close();
      this.scheduleRestart('could not be started', { code: null, signal: null, err });
      return;
    } finally {
      stdoutPipe?.closeWriteEnd();
    }
    this.child = child;

    const deliver = (chunk: Buffer): void => {
      if (this.child === child) this.opts.onStdout(chunk);
    };
    if (stdoutPipe && this.opts.stdoutPollMs !== undefined) {
      stdoutPipe.startPolling(this.opts.stdoutPollMs, deliver, (err) => {
        log.warn({ child: name, err }, 'reading capture child output failed');
        this.restartBecause('its output could not be read');
      });
    } else {
      child.stdout?.on('data', deliver);
    }

    const stderr = new StderrLog(log.child({ child: name }), this.opts.maxLoggedStderrLines ?? 20);
    child.stderr?.on('data', (chunk: Buffer) => stderr.write(chunk));
    let ended = false;
    const onEnd = (end: ChildEnd): void => {
      if (ended) return;
      ended = true;
      if (stdoutPipe) {
        // What the child wrote just before exiting is still in the pipe.
        try {
          stdoutPipe.drain(deliver);
        } catch (err) {
          log.warn({ child: name, err }, 'reading capture child output failed');
        }
        stdoutPipe.close();
      }
      stderr.flush();
      this.onChildEnd(child, { ...end, stderrTail: stderr.tail() });
    };
    child.on('error', (err) => {
      // A child that could not be spawned emits 'error' and never 'close'.
      if (child.pid === undefined) onEnd({ code: null, signal: null, err });
      else log.warn({ child: name, err }, 'capture child error');
    });
    child.on('close', (code, signal) => onEnd({ code, signal }));
    log.info({ child: name, childPid: child.pid, command, args }, 'capture child started');
  }

  private onChildEnd(child: ChildProcess, end: ChildEnd): void {
    if (this.child !== child) return;
    this.child = undefined;
    if (this.stopping) return;
    if (this.recycling) {
      this.recycling = false;
      this.spawnChild();
      return;
    }
    const reason = this.pendingRestartReason ?? 'exited unexpectedly';
    this.pendingRestartReason = undefined;
    this.scheduleRestart(reason, end);
  }

  private scheduleRestart(reason: string, end: ChildEnd): void {
    this.restartCount++;
    const delayMs = this.nextDelayMs;
    this.nextDelayMs = Math.min(this.nextDelayMs * 2, this.backoff.maxMs);
    this.opts.log.warn(
      { child: this.opts.name, reason, ...end, restartInMs: delayMs, restarts: this.restartCount },
      'capture child ended; restarting',
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.stopping) this.spawnChild();
    }, delayMs);
  }

  private terminate(child: ChildProcess): void {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const killTimer = setTimeout(() => child.kill('SIGKILL'), this.opts.stopGraceMs ?? 5_000);
    child.once('close', () => clearTimeout(killTimer));
  }
}

/** Logs a child's stderr line by line, up to a limit, and keeps the last lines for the exit log. */
class StderrLog {
  private partial = '';
  private logged = 0;
  private readonly lastLines: string[] = [];

  constructor(
    private readonly log: Logger,
    private readonly maxLogged: number,
  ) {}

  write(chunk: Buffer): void {
    const lines = (this.partial + chunk.toString('utf8')).split('\n');
    this.partial = (lines.pop() ?? '').slice(-STDERR_LINE_MAX_CHARS);
    for (const line of lines) this.line(line);
  }

  flush(): void {
    if (this.partial) this.line(this.partial);
    this.partial = '';
  }

  tail(): string[] {
    return [...this.lastLines];
  }

  private line(raw: string): void {
    const line = raw.trimEnd().slice(0, STDERR_LINE_MAX_CHARS);
    if (!line) return;
    this.lastLines.push(line);
    if (this.lastLines.length > STDERR_TAIL_LINES) this.lastLines.shift();
    if (this.logged < this.maxLogged) {
      this.logged++;
      this.log.warn({ stderr: line }, this.logged === this.maxLogged ? 'capture child stderr (further lines not logged)' : 'capture child stderr');
    }
  }
}
