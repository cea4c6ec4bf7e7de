// On-demand captures: a query caller asks for one, the broker sends it down the
// host's agent stream and holds the call until the agent's upload of it is
// stored, the agent reports it could not run it, or the wait runs out.
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { CaptureProgram, type RequestCaptureRequest } from '../proto/wire.js';
import type { ConnectedAgent } from './agent-gateway.js';
import { StatusError } from './status-error.js';

/** The capture's upload as the gateway stored it. */
export interface CaptureResult {
  requestId: string;
  pprofGz: Buffer;
  samples: number;
  startUnixNanos: bigint;
  endUnixNanos: bigint;
}

/** How a capture request ended, as counted on /metrics. */
export type CaptureOutcome = 'delivered' | 'agent-failed' | 'timed-out' | 'no-agent' | 'shut-down';

export interface CaptureBrokerOptions {
  /** The agent whose stream is open for this host, if any. */
  agentFor(host: string): ConnectedAgent | undefined;
  log: Logger;
  /** Added to the capture's duration: bpftrace start-up, symbolization, upload. */
  graceMs?: number;
  onOutcome?: (outcome: CaptureOutcome) => void;
}

interface PendingCapture {
  host: string;
  resolve(result: CaptureResult): void;
  reject(err: StatusError): void;
  timer: NodeJS.Timeout;
}

const DEFAULT_GRACE_MS = 60_000;

export class CaptureBroker {
  private readonly pending = new Map<string, PendingCapture>();
  private readonly graceMs: number;

  constructor(private readonly opts: CaptureBrokerOptions) {
    this.graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
  }

  /** Captures sent to agents and not yet answered. */
  get waiting(): number {
    return this.pending.size;
  }

  /** Resolves with the stored capture; the request's numbers must already be in range. */
  request(req: RequestCaptureRequest): Promise<CaptureResult> {
    const agent = this.opts.agentFor(req.host);
    if (!agent) {
      this.opts.onOutcome?.('no-agent');
      return Promise.reject(new StatusError(grpc.status.FAILED_PRECONDITION, `no agent of host ${req.host} is connected, so it cannot be asked for a capture`));
    }
    const requestId = randomUUID();
    return new Promise<CaptureResult>((resolve, reject) => {
      const waitMs = req.durationSeconds * 1000 + this.graceMs;
      const timer = setTimeout(() => {
        this.settle(requestId, 'timed-out')?.reject(
          new StatusError(
            grpc.status.DEADLINE_EXCEEDED,
            `capture ${requestId} of host ${req.host} did not arrive within ${Math.round(waitMs / 1000)} s; if the agent is still running it, ` +
              `\`hotloop query --host ${req.host} --capture ${requestId}\` fetches it later`,
          ),
        );
      }, waitMs);
      this.pending.set(requestId, { host: req.host, resolve, reject, timer });
      const sent = agent.send({
        capture: { requestId, program: CaptureProgram.ONCPU, durationSeconds: req.durationSeconds, frequencyHz: req.frequencyHz, pid: req.pid },
      });
      if (!sent) {
        this.settle(requestId, 'no-agent')?.reject(new StatusError(grpc.status.FAILED_PRECONDITION, `the stream of host ${req.host}'s agent closed before the capture request could be sent`));
        return;
      }
      this.opts.log.info({ requestId, host: req.host, agent: agent.agentId, durationSeconds: req.durationSeconds, frequencyHz: req.frequencyHz, pid: req.pid }, 'capture requested');
    });
  }

  /** The gateway stored an upload answering a request; it may be one this broker no longer waits for. */
  captureStored(host: string, result: CaptureResult): void {
    const waiting = this.pending.get(result.requestId);
    if (!waiting || waiting.host !== host) return;
    this.settle(result.requestId, 'delivered')?.resolve(result);
  }

  /** The agent of `host` says it could not run the request. */
  captureFailed(host: string, requestId: string, reason: string): void {
    const waiting = this.pending.get(requestId);
    // Only the host the request went to may fail it.
    if (!waiting || waiting.host !== host) return;
    this.opts.log.warn({ requestId, host, reason }, 'agent could not run capture');
    this.settle(requestId, 'agent-failed')?.reject(new StatusError(grpc.status.FAILED_PRECONDITION, `the agent of host ${host} could not run the capture: ${reason}`));
  }

  /** Fails every waiting call, so a shutdown does not wait for captures. */
  close(): void {
    for (const requestId of [...this.pending.keys()]) {
      this.settle(requestId, 'shut-down')?.reject(new StatusError(grpc.status.UNAVAILABLE, `collector is shutting down; capture ${requestId} was not waited for`));
    }
  }

  private settle(requestId: string, outcome: CaptureOutcome): PendingCapture | undefined {
    const waiting = this.pending.get(requestId);
    if (!waiting) return undefined;
    clearTimeout(waiting.timer);
    this.pending.delete(requestId);
    this.opts.onOutcome?.(outcome);
    return waiting;
  }
}
