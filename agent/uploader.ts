// Sends finished windows to the collector over one long-lived bidi stream
// that the agent opens itself, and forgets a window only once it is acked.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  newAgentGatewayClient,
  type AgentGatewayClient,
  type AgentMessage,
  type CaptureRequest,
  type CollectorCredentials,
  type CollectorMessage,
  type UploadAck,
  type WindowUpload,
} from '../proto/wire.js';
import { acceptCaptureRequest, REFUSED_ID_EXCERPT_CHARS, type ValidCaptureRequest } from './capture-request.js';
import type { WindowQueue } from './window-queue.js';

export interface UploaderOptions {
  collectorAddress: string;
  host: string;
  agentId: string;
  version: string;
  queue: WindowQueue;
  log: Logger;
  /** TLS and the agent token; plaintext without a token when absent. */
  credentials?: CollectorCredentials;
  /** Reconnect backoff bounds. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  onAck?: (ack: UploadAck, sentAtMs: number | undefined) => void;
  /** Windows sent but not yet acked; more wait in the queue (on disk) instead of in the stream's buffers. */
  maxInflight?: number;
  /** Gets capture requests that passed validation; refused ones are only logged. */
  onCaptureRequest?: (request: ValidCaptureRequest) => void;
}

export class Uploader {
  private readonly client: AgentGatewayClient;
  private call: grpc.ClientDuplexStream<AgentMessage, CollectorMessage> | null = null;
  /** seq → time sent on the current stream; cleared on reconnect so everything unacked is resent. */
  private inflight = new Map<number, number>();
  private backoffMs: number;
  private reconnectTimer: NodeJS.Timeout | null = null;
  /** Set by a temporary refusal: nothing is sent before this time. */
  private pausedUntilMs = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  connected = false;

  constructor(private readonly opts: UploaderOptions) {
    this.client = newAgentGatewayClient(opts.collectorAddress, opts.credentials?.channel);
    this.backoffMs = opts.minBackoffMs ?? 500;
  }

  start(): void {
    this.open();
  }

  enqueue(window: WindowUpload): void {
    this.opts.queue.add(window);
    this.flush();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const call = this.call;
    this.call = null;
    if (call) {
      call.end();
      call.cancel();
    }
    this.client.close();
  }

  private open(): void {
    if (this.stopped) return;
    const call = this.client.connect(this.opts.credentials?.callMetadata.clone() ?? new grpc.Metadata());
    this.call = call;
    this.inflight = new Map();
    call.on('data', (msg: CollectorMessage) => {
      if (!this.connected) {
        this.connected = true;
        this.backoffMs = this.opts.minBackoffMs ?? 500;
        this.opts.log.info({ collector: this.opts.collectorAddress }, 'connected to collector');
      }
      if (msg.ack) this.handleAck(msg.ack);
      else if (msg.capture) this.handleCaptureRequest(msg.capture);
    });
    const onClose = (err?: Error): void => {
      if (this.call !== call) return;
      this.call = null;
      this.connected = false;
      if (this.stopped) return;
      const delay = this.nextDelay();
      this.opts.log.warn(
        { collector: this.opts.collectorAddress, err: err?.message, retryInMs: delay, pending: this.opts.queue.pendingSeqs().length },
        'collector stream closed; windows stay queued',
      );
      this.reconnectTimer = setTimeout(() => this.open(), delay);
    };
    call.on('error', (err: Error) => onClose(err));
    call.on('end', () => onClose());
    call.write({ hello: { host: this.opts.host, agentId: this.opts.agentId, version: this.opts.version } });
    this.flush();
  }

  /** Exponential backoff with full jitter, so a fleet does not reconnect in lockstep. */
  private nextDelay(): number {
    const max = this.opts.maxBackoffMs ?? 30_000;
    const delay = Math.round(this.backoffMs / 2 + Math.random() * (this.backoffMs / 2));
    this.backoffMs = Math.min(this.backoffMs * 2, max);
    return delay;
  }

  /** Holds back sends until the collector's retry-after has passed, then resends what is queued. */
  private pauseSending(ms: number): void {
    this.pausedUntilMs = Math.max(this.pausedUntilMs, Date.now() + ms);
    if (this.retryTimer) return;
    const resume = (): void => {
      const left = this.pausedUntilMs - Date.now();
      this.retryTimer = left > 0 ? setTimeout(resume, left) : null;
      if (left <= 0) this.flush();
    };
    this.retryTimer = setTimeout(resume, ms);
  }

  private flush(): void {
    const call = this.call;
    if (!call || Date.now() < this.pausedUntilMs) return;
    const maxInflight = this.opts.maxInflight ?? 32;
    for (const seq of this.opts.queue.pendingSeqs()) {
      if (this.inflight.size >= maxInflight) return;
      if (this.inflight.has(seq)) continue;
      const window = this.opts.queue.read(seq);
      if (!window) continue;
      this.inflight.set(seq, Date.now());
      call.write({ window });
    }
  }

  /**
   * Tells the collector a capture request will bring no upload, so its caller need not wait; resolves once
   * the message is handed to the stream. Not spooled: without a stream, the caller's wait runs out instead.
   */
  reportCaptureFailure(requestId: string, reason: string): Promise<void> {
    const call = this.call;
    if (!call) return Promise.resolve();
    return new Promise((resolve) => call.write({ captureFailed: { requestId, reason } }, () => resolve()));
  }

  private handleCaptureRequest(req: CaptureRequest): void {
    const decision = acceptCaptureRequest(req, this.opts.log);
    if (!decision.accepted) {
      void this.reportCaptureFailure(req.requestId.slice(0, REFUSED_ID_EXCERPT_CHARS), `refused: ${decision.reason}`);
      return;
    }
    if (this.opts.onCaptureRequest) this.opts.onCaptureRequest(decision.request);
    else {
      this.opts.log.warn({ requestId: decision.request.requestId }, 'capture request not run: this agent does not take on-demand captures');
      void this.reportCaptureFailure(decision.request.requestId, 'this agent does not take on-demand captures');
    }
  }

  private handleAck(ack: UploadAck): void {
    const sentAt = this.inflight.get(ack.seq);
    this.inflight.delete(ack.seq);
    if (!ack.stored && ack.retryAfterMs > 0) {
      // Temporary (rate limit after an outage, store trouble): the window stays spooled.
      this.opts.log.warn({ seq: ack.seq, reason: ack.error, retryInMs: ack.retryAfterMs }, 'collector deferred window; keeping it');
      this.pauseSending(ack.retryAfterMs);
      return;
    }
    if (!ack.stored && !ack.duplicate) {
      // Any other refusal is final for this window (it would be refused again); say why.
      this.opts.log.error({ seq: ack.seq, reason: ack.error }, 'collector refused window');
    }
    if (ack.stored && !this.opts.queue.has(ack.seq)) {
      // The spool made room by deleting a window that was already on the wire; its drop warning overstated the loss.
      this.opts.log.info({ seq: ack.seq }, 'a window dropped from the spool while in flight was stored after all');
    }
    this.opts.queue.remove(ack.seq);
    this.opts.onAck?.(ack, sentAt);
    this.flush();
  }
}
