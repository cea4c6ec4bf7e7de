// Runs test workloads under a real collector and agent, two at a time, and
// reads back what the collector concluded about each: the shared core of the
// verdict tests and `npm run eval`.
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { CollectorClient } from '../../cli/collector-client.js';
import type { ProcessEpisode } from '../../proto/wire.js';
import { freePort, startHotloop, stopProcess, tempDir, waitFor } from './processes.js';
import { launchWorkload, type ExpectedVerdict, type Workload } from './workloads.js';

export interface WorkloadOutcome {
  workload: Workload;
  pid: number;
  predicted: ExpectedVerdict;
  /** Seconds from launch until the collector first reported a busy-loop episode; null if never. */
  detectionSeconds: number | null;
  evidence: string;
  episodes: ProcessEpisode[];
}

export interface HarnessOptions {
  windowSeconds: number;
  /** How many windows a workload is watched for before its verdict is read. */
  windowsPerWorkload: number;
  log?: (line: string) => void;
}

/** What the episodes of one pid say: a reported busy loop wins, else the verdict held longest, else idle. */
export function predictionOf(episodes: ProcessEpisode[]): { predicted: ExpectedVerdict; evidence: string } {
  const busy = episodes.find((e) => e.verdict === 'busy-loop');
  const pick = busy ?? [...episodes].filter((e) => e.verdict !== 'idle').sort((a, b) => b.windows - a.windows)[0];
  if (!pick) return { predicted: { verdict: 'idle', kind: '' }, evidence: 'no episode: never hot' };
  return { predicted: { verdict: pick.verdict, kind: pick.kind } as ExpectedVerdict, evidence: pick.evidence };
}

export class VerdictHarness {
  private collector: ChildProcess | undefined;
  private agent: ChildProcess | undefined;
  private client: CollectorClient | undefined;
  readonly host = `verdicts-${process.pid}`;

  constructor(private readonly opts: HarnessOptions) {}

  async start(): Promise<void> {
    const grpc = `127.0.0.1:${await freePort()}`;
    this.collector = startHotloop(['collector', '--grpc', grpc, '--http', `127.0.0.1:${await freePort()}`, '--data', tempDir('verdicts-data')]).child;
    this.agent = startHotloop(['agent', '--spool', tempDir('agent-spool'), '--http', '127.0.0.1:0', '--collector', grpc, '--host', this.host, '--window', String(this.opts.windowSeconds)]).child;
    const client = new CollectorClient(grpc);
    this.client = client;
    // Episodes of an unknown host are an error: wait for the agent's first window.
    await waitFor('the agent\'s first window', async () => {
      const hosts = await client.listHosts().catch(() => ({ hosts: [] }));
      return hosts.hosts.some((h) => h.host === this.host) ? true : undefined;
    });
  }

  async stop(): Promise<void> {
    this.client?.close();
    if (this.agent) await stopProcess(this.agent);
    if (this.collector) await stopProcess(this.collector);
  }

  /** Runs the workloads concurrently; each is watched until it is reported busy-looping or its windows are up. */
  async run(workloads: readonly Workload[]): Promise<WorkloadOutcome[]> {
    const client = this.client;
    if (!client) throw new Error('harness not started');
    const fromUnixNanos = BigInt(Date.now()) * 1_000_000n;
    const launched = await Promise.all(workloads.map(async (w) => ({ w, child: await launchWorkload(w), startedMs: Date.now() })));
    const watchMs = this.opts.windowSeconds * this.opts.windowsPerWorkload * 1000;
    const detected = new Map<number, number>();
    try {
      for (;;) {
        await sleep(1000);
        const { episodes } = await client.listEpisodes({ host: this.host, fromUnixNanos, toUnixNanos: BigInt(Date.now() + 60_000) * 1_000_000n });
        for (const { child, startedMs } of launched) {
          const pid = child.pid ?? 0;
          if (!detected.has(pid) && episodes.some((e) => e.pid === pid && e.verdict === 'busy-loop')) detected.set(pid, (Date.now() - startedMs) / 1000);
        }
        const done = launched.every(({ child, startedMs }) => detected.has(child.pid ?? 0) || Date.now() - startedMs >= watchMs);
        if (done) {
          return launched.map(({ w, child }) => {
            const pid = child.pid ?? 0;
            const mine = episodes.filter((e) => e.pid === pid);
            const { predicted, evidence } = predictionOf(mine);
            this.opts.log?.(`${w.name.padEnd(24)} expected ${fmt(w.expected)}, got ${fmt(predicted)}: ${evidence}`);
            return { workload: w, pid, predicted, detectionSeconds: detected.get(pid) ?? null, evidence, episodes: mine };
          });
        }
      }
    } finally {
      for (const { child } of launched) child.kill('SIGKILL');
    }
  }
}

export function fmt(v: ExpectedVerdict): string {
  return v.kind ? `${v.verdict}/${v.kind}` : v.verdict;
}
