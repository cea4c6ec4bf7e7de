// One AgentGateway.Connect stream driven by a test: hello, uploads, and the
// acks or final status the collector answers with.
import * as grpc from '@grpc/grpc-js';
import { encodeProfileGz } from '../../proto/pprof.js';
import type { AgentGatewayClient, AgentMessage, CollectorMessage, UploadAck, WindowUpload } from '../../proto/wire.js';
import { cpuProfile, type SampleSpec } from './cpu-profiles.js';

const T0 = 1_700_000_000_000_000_000n;
const SECOND = 1_000_000_000n;

/** Metadata carrying `token` as the collector expects it. */
export function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

/** A 10 s window of `host` with the given samples (one spinning process by default). */
export function windowOf(host: string, agentId: string, seq: number, samples: SampleSpec[] = [{ stack: ['spin', 'main'], pid: 100, comm: 'api', count: 3 }]): WindowUpload {
  const start = T0 + BigInt(seq) * 10n * SECOND;
  return {
    host,
    agentId,
    seq,
    startUnixNanos: start,
    endUnixNanos: start + 10n * SECOND,
    pprofGz: encodeProfileGz(cpuProfile(samples, start, 10n * SECOND)),
    processes: [{ pid: 100, comm: 'api', exe: '/usr/bin/api', cmdline: 'api', cgroup: '/', containerId: '', hot: true, cpuCores: 1 }],
  };
}

export class AgentStreamSession {
  readonly call: grpc.ClientDuplexStream<AgentMessage, CollectorMessage>;
  /** How the call ended. */
  readonly status: Promise<grpc.StatusObject>;
  private readonly acks: UploadAck[] = [];
  private readonly waiting: { resolve(a: UploadAck): void; reject(e: Error): void }[] = [];
  private ended = false;

  constructor(client: AgentGatewayClient, metadata = new grpc.Metadata()) {
    this.call = client.connect(metadata);
    this.call.on('data', (m: CollectorMessage) => {
      if (!m.ack) return;
      const waiter = this.waiting.shift();
      if (waiter) waiter.resolve(m.ack);
      else this.acks.push(m.ack);
    });
    // A failed call reports through 'status' too; this keeps 'error' from being unhandled.
    this.call.on('error', () => {});
    this.status = new Promise((resolve) =>
      this.call.on('status', (s: grpc.StatusObject) => {
        this.ended = true;
        for (const w of this.waiting.splice(0)) w.reject(new Error(`stream ended (${s.code} ${s.details}) before an ack`));
        resolve(s);
      }),
    );
  }

  hello(host: string, agentId: string): void {
    this.call.write({ hello: { host, agentId, version: 'test' } });
  }

  upload(window: WindowUpload): Promise<UploadAck> {
    this.call.write({ window });
    return this.nextAck();
  }

  /** The next ack, in arrival order. */
  nextAck(): Promise<UploadAck> {
    const queued = this.acks.shift();
    if (queued) return Promise.resolve(queued);
    if (this.ended) return Promise.reject(new Error('stream already ended'));
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  end(): Promise<grpc.StatusObject> {
    this.call.end();
    return this.status;
  }
}
