// `npm run soak [-- --agents 50 --seconds 60 --interval-ms 500]`: simulated
// agents (the real uploader, over loopback gRPC) upload to a real collector
// process for a bounded time while query clients keep asking it questions.
// Prints the ingest rate, ack latency and losses; exits 1 on any loss.
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { CollectorClient } from '../../cli/collector-client.js';
import { freePort, startHotloop, stopProcess, tempDir, waitFor } from '../helpers/processes.js';
import { SimulatedAgent } from '../helpers/simulated-agents.js';

const { values: args } = parseArgs({
  options: {
    agents: { type: 'string', default: '50' },
    seconds: { type: 'string', default: '60' },
    'interval-ms': { type: 'string', default: '500' },
    'query-clients': { type: 'string', default: '4' },
  },
});
const AGENTS = Number(args.agents);
const SECONDS = Number(args.seconds);
const INTERVAL_MS = Number(args['interval-ms']);
const QUERY_CLIENTS = Number(args['query-clients']);
const DRAIN_LIMIT_MS = 120_000;
const NS_PER_MS = 1_000_000n;

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN);
}

/** Keeps asking: hosts, one host's profile over the last minute, episodes, fleet. Returns each query's latency. */
async function queryLoop(client: CollectorClient, hosts: string[], until: () => boolean, latenciesMs: number[], failures: string[]): Promise<void> {
  for (let i = 0; !until(); i++) {
    const nowNs = BigInt(Date.now()) * NS_PER_MS;
    const started = performance.now();
    try {
      switch (i % 4) {
        case 0:
          await client.listHosts();
          break;
        case 1:
          await client.queryProfile({ host: hosts[i % hosts.length] ?? '', fromUnixNanos: nowNs - 60_000n * NS_PER_MS, toUnixNanos: nowNs, pid: 0, comm: '' });
          break;
        case 2:
          await client.listEpisodes({ host: '', fromUnixNanos: nowNs - 3_600_000n * NS_PER_MS, toUnixNanos: nowNs });
          break;
        default:
          await client.fleet({ fromUnixNanos: nowNs - 3_600_000n * NS_PER_MS, toUnixNanos: nowNs });
      }
      latenciesMs.push(performance.now() - started);
    } catch (err) {
      // An unknown host or an empty range right at the start is a normal answer; anything else is worth reporting.
      const message = err instanceof Error ? err.message : String(err);
      if (!/no (windows|samples)|unknown host/i.test(message)) failures.push(message);
    }
  }
}

async function main(): Promise<void> {
  const grpc = `127.0.0.1:${await freePort()}`;
  const http = `127.0.0.1:${await freePort()}`;
  const perAgentPerMinute = Math.ceil(60_000 / INTERVAL_MS);
  const collector = startHotloop([
    'collector', '--grpc', grpc, '--http', http, '--data', tempDir('soak-data'),
    // The soak measures ingest, not the per-agent rate limit: give it room.
    '--max-uploads-per-minute', String(2 * perAgentPerMinute), '--upload-burst', String(2 * perAgentPerMinute),
  ]);
  const agents = Array.from({ length: AGENTS }, (_, i) => new SimulatedAgent(`soak-${String(i).padStart(3, '0')}`, grpc));
  const clients = Array.from({ length: QUERY_CLIENTS }, () => new CollectorClient(grpc));
  try {
    await waitFor('the collector to answer', () => clients[0]!.listHosts().then(() => true, () => undefined), 60_000);
    console.log(`hotloop soak: ${AGENTS} agents, one window each per ${INTERVAL_MS} ms for ${SECONDS} s, ${QUERY_CLIENTS} query clients, collector at ${grpc}`);
    const started = Date.now();
    const endAt = started + SECONDS * 1000;
    const queryLatencies: number[] = [];
    const queryFailures: string[] = [];
    const queries = clients.map((c) => queryLoop(c, agents.map((a) => a.host), () => Date.now() >= endAt, queryLatencies, queryFailures));

    // Agents start spread over one interval, as a fleet's would.
    const senders = agents.map(async (agent, i) => {
      await sleep((i * INTERVAL_MS) / AGENTS);
      for (let next = Date.now(); next < endAt; next += INTERVAL_MS) {
        agent.send(BigInt(Date.now() - INTERVAL_MS) * NS_PER_MS, BigInt(INTERVAL_MS) * NS_PER_MS);
        await sleep(Math.max(0, next + INTERVAL_MS - Date.now()));
      }
    });
    await Promise.all([...senders, ...queries]);
    const sendSeconds = (Date.now() - started) / 1000;
    await waitFor('every window acked', () => (agents.every((a) => a.queue.pendingSeqs().length === 0) ? true : undefined), DRAIN_LIMIT_MS);

    const sent = agents.reduce((n, a) => n + a.sent, 0);
    const refused = agents.flatMap((a) => a.acks.filter((r) => !r.ack.stored));
    const { hosts } = await clients[0]!.listHosts();
    const storedByHost = new Map(hosts.map((h) => [h.host, h.windows]));
    const lost = agents.reduce((n, a) => n + Math.max(0, a.sent - (storedByHost.get(a.host) ?? 0)), 0);
    const doubled = agents.reduce((n, a) => n + Math.max(0, (storedByHost.get(a.host) ?? 0) - a.sent), 0);
    const ackLatencies = agents.flatMap((a) => a.acks.map((r) => r.latencyMs ?? NaN)).filter(Number.isFinite).sort((x, y) => x - y);
    const sortedQueries = [...queryLatencies].sort((x, y) => x - y);

    console.log(`windows sent ${sent}, stored ${[...storedByHost.values()].reduce((a, b) => a + b, 0)}, refused ${refused.length}, lost ${lost}, stored twice ${doubled}`);
    console.log(`ingest rate ${(sent / sendSeconds).toFixed(1)} windows/s over ${sendSeconds.toFixed(1)} s`);
    console.log(`ack latency p50 ${percentile(ackLatencies, 50).toFixed(1)} ms, p99 ${percentile(ackLatencies, 99).toFixed(1)} ms, max ${percentile(ackLatencies, 100).toFixed(1)} ms (${ackLatencies.length} acks)`);
    console.log(`queries ${queryLatencies.length}, p50 ${percentile(sortedQueries, 50).toFixed(1)} ms, p99 ${percentile(sortedQueries, 99).toFixed(1)} ms, failed ${queryFailures.length}${queryFailures[0] ? ` (first: ${queryFailures[0]})` : ''}`);
    const metrics = await (await fetch(`http://${http}/metrics`)).text();
    for (const line of metrics.split('\n').filter((l) => /^hotloop_collector_(windows_ingested_total|uploads_rejected_total|store_latency_seconds_(sum|count))/.test(l))) console.log(`  ${line}`);
    if (lost > 0 || doubled > 0 || refused.length > 0) {
      console.log(`FAILED: ${lost} lost, ${doubled} stored twice, ${refused.length} refused${refused[0] ? ` (first: ${refused[0].ack.error})` : ''}`);
      process.exitCode = 1;
    } else {
      console.log('losses: 0');
    }
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    for (const c of clients) c.close();
    await stopProcess(collector.child);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
