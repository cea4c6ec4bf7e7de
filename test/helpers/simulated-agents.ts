// Agents without capture, for collector fault tests and the soak: each is the
// real Uploader (one gRPC stream, acks, reconnects) over an in-memory queue,
// fed with small but valid CPU windows.
import { pino } from 'pino';
import { Uploader } from '../../agent/uploader.js';
import { MemoryWindowQueue } from './memory-window-queue.js';
import { encodeProfileGz } from '../../proto/pprof.js';
import type { UploadAck, WindowUpload } from '../../proto/wire.js';
import { cpuProfile } from './cpu-profiles.js';

const SECOND = 1_000_000_000n;

/** A window as an agent would send it: a hot process spinning in two functions, plus an idle one. */
export function simulatedWindow(host: string, agentId: string, seq: number, startNs: bigint, lengthNs = 10n * SECOND): WindowUpload {
  return {
    host,
    agentId,
    seq,
    startUnixNanos: startNs,
    endUnixNanos: startNs + lengthNs,
    pprofGz: encodeProfileGz(
      cpuProfile(
        [
          { stack: ['spin_inner', 'spin', 'main'], pid: 100, comm: 'api', count: 150 + (seq % 7) },
          { stack: ['poll', 'main'], pid: 200, comm: 'db', count: 3 },
        ],
        startNs,
        lengthNs,
      ),
    ),
    processes: [
      { pid: 100, comm: 'api', exe: '/usr/bin/api', cmdline: 'api --serve', cgroup: '/system.slice/api.service', containerId: '', hot: true, cpuCores: 1 },
      { pid: 200, comm: 'db', exe: '/usr/bin/db', cmdline: 'db', cgroup: '/system.slice/db.service', containerId: '', hot: false, cpuCores: 0.02 },
    ],
  };
}

export interface AckRecord {
  ack: UploadAck;
  /** Send to ack, as the uploader measured it. */
  latencyMs: number | undefined;
}

export class SimulatedAgent {
  readonly agentId: string;
  readonly queue: MemoryWindowQueue;
  readonly acks: AckRecord[] = [];
  private readonly uploader: Uploader;
  private nextSeq = 1;

  constructor(
    readonly host: string,
    collectorAddress: string,
    onAck: (agent: SimulatedAgent, record: AckRecord) => void = () => {},
  ) {
    this.agentId = `${host}/simulated`;
    this.queue = new MemoryWindowQueue(1_000_000);
    this.uploader = new Uploader({
      collectorAddress,
      host,
      agentId: this.agentId,
      version: 'simulated',
      queue: this.queue,
      log: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
      minBackoffMs: 100,
      maxBackoffMs: 1_000,
      onAck: (ack, sentAtMs) => {
        const record = { ack, latencyMs: sentAtMs === undefined ? undefined : Date.now() - sentAtMs };
        this.acks.push(record);
        onAck(this, record);
      },
    });
    this.uploader.start();
  }

  /** Queues the next window, starting at startNs; returns its seq. */
  send(startNs: bigint, lengthNs = 10n * SECOND): number {
    const seq = this.nextSeq++;
    this.uploader.enqueue(simulatedWindow(this.host, this.agentId, seq, startNs, lengthNs));
    return seq;
  }

  /** Windows queued so far. */
  get sent(): number {
    return this.nextSeq - 1;
  }

  stop(): Promise<void> {
    return this.uploader.stop();
  }
}
