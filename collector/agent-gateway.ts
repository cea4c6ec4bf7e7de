// The AgentGateway.Connect handler: one long-lived stream per agent. Windows
// are handled one at a time in arrival order and acked only once the store has
// committed them (or refused, with the reason), so an agent can drop exactly
// the windows it saw acked. Each stored window is then classified and folded
// into its host's episodes, on the same queue, so a host's windows are
// classified in order. Uploads answering a capture request are stored apart
// and handed to the capture broker instead.
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { CPU_PERIOD_TYPE, CPU_SAMPLE_TYPES, ProfileBuilder } from '../proto/pprof-builder.js';
import { decodeProfile, type Profile } from '../proto/pprof.js';
import { CAPTURE_REQUEST_ID } from '../proto/capture-limits.js';
import type { AgentHello, AgentMessage, CaptureFailure, CollectorMessage, UploadAck, WindowUpload } from '../proto/wire.js';
import type { CaptureBroker } from './capture-broker.js';
import type { EpisodeTracker } from './episode-tracker.js';
import { profileShape, sampleTotal } from './profile-merge.js';
import type { ProfileStore } from './store.js';
import { UploadRateLimiter, type UploadLimits } from './upload-limits.js';
import { classifyWindow } from './window-classifier.js';

export interface AgentGatewayOptions {
  store: ProfileStore;
  episodes: EpisodeTracker;
  log: Logger;
  metrics: GatewayMetrics;
  limits: UploadLimits;
  /** Told about stored captures and the agents' capture failures. */
  captures: Pick<CaptureBroker, 'captureStored' | 'captureFailed'>;
  /** With mutual TLS: why the connection's client certificate may not speak for `host`, or null if it may. */
  certificateHostProblem?: (cert: PeerCertificate | undefined, host: string) => string | null;
}

/** Short, stable names for why a window was refused: the label of the refusals metric. */
export type UploadRefusalReason =
  | 'no-hello'
  | 'wrong-identity'
  | 'rate-limited'
  | 'bad-times'
  | 'too-large'
  | 'bad-pprof'
  | 'not-cpu-profile'
  | 'too-many-samples'
  | 'store-failed'
  | 'bad-capture-id'
  | 'empty-message';

/** What the gateway reports to the collector's /metrics. */
export interface GatewayMetrics {
  windowStored(seconds: number, duplicate: boolean): void;
  uploadRejected(reason: UploadRefusalReason): void;
}

/** Why a window is refused: the ack's error text, and its reason for the metric. */
class Refusal {
  constructor(
    readonly reason: UploadRefusalReason,
    readonly error: string,
    /** Non-zero for temporary refusals: the agent keeps the window and retries. */
    readonly retryAfterMs = 0,
  ) {}
}

/** How long an agent waits before resending a window the store failed to commit. */
const STORE_FAILURE_RETRY_MS = 5_000;

/** What every stream of one gateway shares. */
interface GatewayContext extends AgentGatewayOptions {
  rateLimiter: UploadRateLimiter;
}

/** An agent whose Connect stream is open and has said hello. */
export interface ConnectedAgent {
  readonly host: string;
  readonly agentId: string;
  readonly version: string;
  /** The agent's address as the connection sees it. */
  readonly peer: string;
  /** Queues a message down the agent's stream; false once the stream has closed. */
  send(message: CollectorMessage): boolean;
}

type ConnectCall = grpc.ServerDuplexStream<AgentMessage, CollectorMessage>;

/** Sample and period types every window must carry, so any range of windows can be merged. */
const CPU_SHAPE = profileShape(
  new ProfileBuilder({ sampleTypes: CPU_SAMPLE_TYPES, periodType: CPU_PERIOD_TYPE, period: 0, timeNanos: 0n, durationNanos: 0n }).build(),
);

export class AgentGateway {
  private readonly streams = new Set<AgentStream>();
  private readonly byHost = new Map<string, AgentStream>();
  private closing = false;
  private readonly context: GatewayContext;

  /** Handlers to register with `server.addService(agentGatewayService, ...)`. */
  readonly implementation: grpc.UntypedServiceImplementation = {
    connect: (call: ConnectCall) => this.accept(call),
  };

  constructor(private readonly opts: AgentGatewayOptions) {
    this.context = { ...opts, rateLimiter: new UploadRateLimiter(opts.limits) };
  }

  /** Agents with an open stream, by host; a reconnecting host's newest stream wins. */
  connectedAgents(): ReadonlyMap<string, ConnectedAgent> {
    return this.byHost;
  }

  /** Finishes the window each stream is handling, then ends every stream with status OK. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.streams].map((s) => s.finish()));
  }

  private accept(call: ConnectCall): void {
    if (this.closing) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'collector is shutting down' });
      return;
    }
    const stream = new AgentStream(call, this.context, {
      greeted: (s) => {
        const previous = this.byHost.get(s.host);
        if (previous) this.opts.log.info({ host: s.host, previous: previous.peer, peer: s.peer }, 'host reconnected; newest stream wins');
        this.byHost.set(s.host, s);
      },
      closed: (s) => {
        this.streams.delete(s);
        if (this.byHost.get(s.host) === s) this.byHost.delete(s.host);
      },
    });
    this.streams.add(stream);
  }
}

interface StreamEvents {
  greeted(stream: AgentStream): void;
  closed(stream: AgentStream): void;
}

class AgentStream implements ConnectedAgent {
  host = '';
  agentId = '';
  version = '';
  readonly peer: string;
  private hello: AgentHello | null = null;
  /** Messages are handled strictly in order: each waits for the previous one. */
  private work: Promise<void> = Promise.resolve();
  private open = true;
  /** Set once our side is ending: messages not yet read stay unread. */
  private finishing = false;
  private readonly log: Logger;

  constructor(
    private readonly call: ConnectCall,
    private readonly opts: GatewayContext,
    private readonly events: StreamEvents,
  ) {
    this.peer = call.getPeer();
    this.log = opts.log.child({ peer: this.peer });
    call.on('data', (message: AgentMessage) => {
      // Stop reading while the store works, so a fast agent is slowed by flow control instead of queued here.
      call.pause();
      this.work = this.work
        .then(() => this.handle(message))
        .catch((err: unknown) => this.log.error({ err }, 'failed to handle agent message'))
        .then(() => {
          if (this.open && !this.finishing) call.resume();
        });
    });
    call.on('end', () => void this.finish());
    call.on('error', (err: unknown) => this.log.warn({ err }, 'agent stream failed'));
    call.on('close', () => {
      this.open = false;
      if (this.hello) this.log.info({ host: this.host, agentId: this.agentId }, 'agent disconnected');
      events.closed(this);
    });
  }

  send(message: CollectorMessage): boolean {
    if (!this.open || this.call.writableEnded) return false;
    this.call.write(message);
    return true;
  }

  /** Ends our side once the message being handled is acked. */
  async finish(): Promise<void> {
    this.finishing = true;
    this.call.pause();
    await this.work;
    if (this.open && !this.call.writableEnded) this.call.end();
  }

  private async handle(message: AgentMessage): Promise<void> {
    if (message.hello) this.greet(message.hello);
    else if (message.window) await this.handleWindow(message.window);
    else if (message.captureFailed) this.handleCaptureFailure(message.captureFailed);
    else {
      // Agents send only these; anything else is a broken client, and it gets an answer rather than silence.
      this.opts.metrics.uploadRejected('empty-message');
      this.refuseStream(grpc.status.INVALID_ARGUMENT, 'agent message carries neither hello nor window');
    }
  }

  private greet(hello: AgentHello): void {
    const problem = this.hello
      ? `hello sent twice on one stream (first as agent ${this.hello.agentId} on host ${this.hello.host})`
      : !hello.host || !hello.agentId
        ? 'hello must name both host and agent_id'
        : null;
    if (problem) {
      this.refuseStream(grpc.status.INVALID_ARGUMENT, problem);
      return;
    }
    const certProblem = this.opts.certificateHostProblem?.(this.call.getAuthContext().sslPeerCertificate, hello.host);
    if (certProblem) {
      this.refuseStream(grpc.status.PERMISSION_DENIED, `may not upload for host ${hello.host}: ${certProblem}`);
      return;
    }
    this.hello = hello;
    this.host = hello.host;
    this.agentId = hello.agentId;
    this.version = hello.version;
    this.log.info({ host: hello.host, agentId: hello.agentId, version: hello.version }, 'agent connected');
    this.events.greeted(this);
  }

  /** Ends the call with this status; the 'error' listener logs it. */
  private refuseStream(code: grpc.status, details: string): void {
    this.open = false;
    this.call.emit('error', { code, details });
  }

  private handleCaptureFailure(failure: CaptureFailure): void {
    if (!this.hello) {
      this.refuseStream(grpc.status.INVALID_ARGUMENT, 'capture failure sent before hello; send hello first');
      return;
    }
    this.opts.captures.captureFailed(this.host, failure.requestId, failure.reason);
  }

  private async handleWindow(w: WindowUpload): Promise<void> {
    const captureId = w.captureRequestId ?? '';
    const profile = this.check(w);
    if (profile instanceof Refusal) {
      this.send({ ack: this.refused(w, profile) });
      // A temporary refusal is resent; any other would leave the capture's caller waiting for nothing.
      if (captureId !== '' && profile.retryAfterMs === 0) this.opts.captures.captureFailed(this.host, captureId, `the collector refused its upload: ${profile.error}`);
      return;
    }
    const samples = sampleTotal(profile.sample);
    const ack = await this.storeWindow(w, samples, captureId);
    this.send({ ack });
    if (!ack.stored) return;
    if (captureId !== '') {
      this.opts.captures.captureStored(w.host, { requestId: captureId, pprofGz: w.pprofGz, samples, startUnixNanos: w.startUnixNanos, endUnixNanos: w.endUnixNanos });
      return;
    }
    // After the ack: classifying neither delays it nor can undo it. A duplicate was classified when first stored.
    if (!ack.duplicate) await this.classify(w, profile);
  }

  private async classify(w: WindowUpload, profile: Profile): Promise<void> {
    try {
      await this.opts.episodes.recordWindow(w, classifyWindow(w, profile));
    } catch (err) {
      this.log.error({ err, host: w.host, seq: w.seq }, 'classifying the window failed; it stays stored');
    }
  }

  private refused(w: WindowUpload, { reason, error, retryAfterMs }: Refusal): UploadAck {
    this.opts.metrics.uploadRejected(reason);
    this.log.warn({ host: w.host, agentId: w.agentId, seq: w.seq, error, retryAfterMs }, 'window refused');
    return { agentId: w.agentId, seq: w.seq, stored: false, duplicate: false, error, retryAfterMs };
  }

  private async storeWindow(w: WindowUpload, samples: number, captureId: string): Promise<UploadAck> {
    try {
      const started = process.hrtime.bigint();
      const { duplicate } = captureId === '' ? await this.opts.store.putWindow(w, samples) : await this.opts.store.putCapture(w, captureId, samples);
      this.opts.metrics.windowStored(Number(process.hrtime.bigint() - started) / 1e9, duplicate);
      this.log.debug({ host: w.host, seq: w.seq, duplicate }, 'window stored');
      return { agentId: w.agentId, seq: w.seq, stored: true, duplicate, error: '', retryAfterMs: 0 };
    } catch (err) {
      this.log.error({ err, host: w.host, seq: w.seq }, 'store failed to commit window');
      return this.refused(w, new Refusal('store-failed', `collector could not store the window: ${err instanceof Error ? err.message : String(err)}`, STORE_FAILURE_RETRY_MS));
    }
  }

  /** The window's decoded profile, or why the window is refused. */
  private check(w: WindowUpload): Profile | Refusal {
    if (!this.hello) return new Refusal('no-hello', 'window sent before hello; send hello first');
    if (w.agentId !== this.hello.agentId || w.host !== this.hello.host) {
      return new Refusal('wrong-identity', `window is from agent ${w.agentId} on host ${w.host}, but this stream said hello as agent ${this.hello.agentId} on host ${this.hello.host}`);
    }
    const limits = this.opts.limits;
    const waitMs = this.opts.rateLimiter.take(w.agentId);
    if (waitMs > 0) {
      return new Refusal(
        'rate-limited',
        `agent ${w.agentId} is over the collector's upload rate limit (bursts of ${limits.uploadBurst}, then ${limits.uploadsPerMinute} a minute); retry in ${waitMs} ms`,
        waitMs,
      );
    }
    const captureId = w.captureRequestId ?? '';
    if (captureId !== '' && !CAPTURE_REQUEST_ID.test(captureId)) {
      return new Refusal('bad-capture-id', `capture_request_id must be 1-64 characters of letters, digits, "_" and "-", as the collector issues them`);
    }
    if (w.endUnixNanos < w.startUnixNanos) return new Refusal('bad-times', `window ends (${w.endUnixNanos}) before it starts (${w.startUnixNanos})`);
    if (w.pprofGz.length > limits.maxWindowBytes) return new Refusal('too-large', `pprof_gz is ${w.pprofGz.length} bytes, over the collector's limit of ${limits.maxWindowBytes}`);
    let profile: Profile;
    try {
      profile = decodeProfile(w.pprofGz, limits.maxWindowBytes);
    } catch (err) {
      return new Refusal('bad-pprof', `pprof_gz is not a valid profile: ${err instanceof Error ? err.message : String(err)}`);
    }
    const shape = profileShape(profile);
    if (shape !== CPU_SHAPE) return new Refusal('not-cpu-profile', `pprof has sample types ${shape}; hotloop windows carry ${CPU_SHAPE}`);
    if (profile.sample.length > limits.maxSamplesPerWindow) {
      return new Refusal('too-many-samples', `pprof has ${profile.sample.length} samples, over the collector's limit of ${limits.maxSamplesPerWindow} per window`);
    }
    return profile;
  }
}
