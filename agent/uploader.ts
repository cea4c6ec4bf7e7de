// Sends finished windows to the collector over one long-lived bidi stream
// that the agent opens itself, and forgets a window only once it is acked.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { newAgentGatewayClient, type AgentGatewayClient, type AgentMessage, type CollectorMessage, type UploadAck, type WindowUpload } from '../proto/wire.js';
import type { WindowQueue } from './window-queue.js';

export interface UploaderOptions {
  collectorAddress: string;
  host: string;
  agentId: string;
  version: string;
  queue: WindowQueue;
  log: Logger;
  credentials?: grpc.ChannelCredentials;
  /** Reconnect backoff bounds. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  onAck?: (ack: UploadAck, sentAtMs: number | undefined) => void;
}

export class Uploader {
  private readonly client: AgentGatewayClient;
  private call: grpc.ClientDuplexStream<AgentMessage, CollectorMessage> | null = null;
  /** seq → time sent on the current stream; cleared on reconnect so everything unacked is resent. */
  private inflight = new Map<number, number>();
  private backoffMs: number;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  connected = false;

  constructor(private readonly opts: UploaderOptions) {
    this.client = newAgentGatewayClient(opts.collectorAddress, opts.credentials);
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
    const call = this.client.connect();
    this.call = call;
    this.inflight = new Map();
    call.on('data', (msg: CollectorMessage) => {
      if (!this.connected) {
        this.connected = true;
        this.backoffMs = this.opts.minBackoffMs ?? 500;
        this.opts.log.info({ collector: this.opts.collectorAddress }, 'connected to collector');
      }
      if (msg.ack) this.handleAck(msg.ack);
    });
    const onClose = (err?: Error): void => {
      if (this.call !== call) return;
      this.call = null;
      this.connected = false;
      if (this.stopped) return;
      const delay = this.nextDelay();
      this.opts.log.warn(
        { collector: this.opts.collectorAddress, err: err?.message, retryInMs: delay, pending: this.opts.queue.pending().length },
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

  private flush(): void {
    const call = this.call;
    if (!call) return;
    for (const window of this.opts.queue.pending()) {
      if (this.inflight.has(window.seq)) continue;
      this.inflight.set(window.seq, Date.now());
      call.write({ window });
    }
  }

  private handleAck(ack: UploadAck): void {
    const sentAt = this.inflight.get(ack.seq);
    this.inflight.delete(ack.seq);
    if (!ack.stored && !ack.duplicate) {
      // A refusal is final for this window (it would be refused again); say why.
      this.opts.log.error({ seq: ack.seq, reason: ack.error }, 'collector refused window');
    }
    this.opts.queue.remove(ack.seq);
    this.opts.onAck?.(ack, sentAt);
  }
}
