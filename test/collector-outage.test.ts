// A real agent (bpftrace, 2 s windows) keeps profiling while its real
// collector is stopped for two minutes; halfway through, the agent itself is
// restarted with SIGTERM. Once the collector is back, every window of the
// outage arrives, none twice, under one agent id with one unbroken sequence.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, test } from 'node:test';
import { capturedSeqs, logLines, oneTo, scrapeMetric, storedWindows, summaryWindowCount, windowEndNs } from './helpers/durability.js';
import { freePort, startHotloop, stopProcess, tempDir, waitFor } from './helpers/processes.js';

const OUTAGE_MS = 120_000;
const host = `outage-${process.pid}`;
const running: ChildProcess[] = [];

after(async () => {
  for (const child of running) await stopProcess(child);
});

function start(args: string[]): ReturnType<typeof startHotloop> {
  const daemon = startHotloop(args);
  running.push(daemon.child);
  return daemon;
}

test('no window is lost or stored twice across a 2-minute collector outage and an agent restart', { timeout: 6 * 60_000 }, async () => {
  const data = tempDir('outage-data');
  const spool = tempDir('outage-spool');
  const grpc = `127.0.0.1:${await freePort()}`;
  const collectorArgs = ['collector', '--grpc', grpc, '--http', `127.0.0.1:${await freePort()}`, '--data', data];
  const agentHttp = `127.0.0.1:${await freePort()}`;
  const agentArgs = ['agent', '--collector', grpc, '--host', host, '--window', '2', '--spool', spool, '--http', agentHttp];

  let collector = start(collectorArgs);
  const firstAgent = start(agentArgs);
  await waitFor('two windows stored', () => (storedWindows(data, host).length >= 2 ? true : undefined));

  assert.equal(await stopProcess(collector.child), 0, 'collector stops cleanly');
  const storedBeforeOutage = storedWindows(data, host).length;
  await sleep(OUTAGE_MS / 2);

  // SIGTERM: the agent spools its partial window and exits 0; the next one resumes from the spool.
  const sigtermAtNs = BigInt(Date.now()) * 1_000_000n;
  assert.equal(await stopProcess(firstAgent.child), 0, 'agent exits 0 on SIGTERM');
  const secondAgent = start(agentArgs);
  await sleep(OUTAGE_MS / 2);
  const spooled = await scrapeMetric(agentHttp, 'hotloop_agent_spool_windows');
  assert.ok(spooled !== undefined && spooled >= 40, `the outage's windows wait in the spool (${spooled})`);

  collector = start(collectorArgs);
  const captured = () => [...capturedSeqs(firstAgent.logs()), ...capturedSeqs(secondAgent.logs())];
  // Read the agent's log before the store: a window captured in between is then stored but not yet listed, never the reverse.
  const { seqs, stored } = await waitFor('every captured window stored', () => {
    const seqs = captured();
    const stored = storedWindows(data, host);
    return (stored.at(-1)?.seq ?? 0) >= Math.max(...seqs) ? { seqs, stored } : undefined;
  });

  assert.deepEqual(seqs, oneTo(seqs.length), 'the restarted agent continued the sequence');
  assert.deepEqual(
    stored.map((w) => w.seq),
    oneTo(stored.length),
    'stored: 1..N with N at least the last captured seq, each once',
  );
  assert.equal(new Set(stored.map((w) => w.agentId)).size, 1, 'one agent id across the restart');
  assert.equal(summaryWindowCount(data, host), stored.length, 'the hosts summary counted each window once');
  assert.ok(seqs.length - storedBeforeOutage >= 50, `${seqs.length - storedBeforeOutage} windows were captured during the outage`);

  const lastOfFirst = Math.max(...capturedSeqs(firstAgent.logs()));
  assert.ok(windowEndNs(data, host, lastOfFirst) >= sigtermAtNs, 'the first agent\'s last window is the partial one it was capturing at SIGTERM');

  const starts = [...logLines(firstAgent.logs()), ...logLines(secondAgent.logs())].filter((l) => l.msg === 'agent started');
  assert.equal(starts.length, 2);
  assert.equal(starts[1]?.agentId, starts[0]?.agentId);
  assert.ok(Number(starts[1]?.spooled) > 0, 'the second agent found the first one\'s windows in the spool');
});
