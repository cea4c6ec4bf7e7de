// A real collector process is SIGKILLed in the middle of a burst of uploads
// from simulated agents (the real uploader over real gRPC). Every window it
// had acked is in its SQLite file, which opens cleanly; once it is restarted,
// the agents resend the rest and every window is stored exactly once.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { oneTo, storedWindows, summaryWindowCount } from './helpers/durability.js';
import { freePort, startHotloop, stopProcess, tempDir, waitFor } from './helpers/processes.js';
import { SimulatedAgent } from './helpers/simulated-agents.js';

const AGENTS = 6;
const WINDOWS_PER_AGENT = 150;
const KILL_AFTER_ACKS = 200;
const T0 = BigInt(Date.now() - 3_600_000) * 1_000_000n;

const agents: SimulatedAgent[] = [];
const running: ChildProcess[] = [];
after(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  for (const child of running) await stopProcess(child);
});

test('a collector SIGKILLed mid-burst keeps every acked window and opens cleanly', { timeout: 180_000 }, async () => {
  const data = tempDir('crash-data');
  const grpc = `127.0.0.1:${await freePort()}`;
  const collectorArgs = ['collector', '--grpc', grpc, '--http', `127.0.0.1:${await freePort()}`, '--data', data];
  const first = startHotloop(collectorArgs);
  running.push(first.child);

  const acked = new Set<string>();
  for (let i = 0; i < AGENTS; i++) {
    agents.push(
      new SimulatedAgent(`crash-${process.pid}-${i}`, grpc, (agent, { ack }) => {
        if (!ack.stored) return;
        acked.add(`${agent.host} ${ack.seq}`);
        // Killed from inside the ack handler: uploads are still streaming in.
        if (acked.size === KILL_AFTER_ACKS) first.child.kill('SIGKILL');
      }),
    );
  }
  for (let n = 0; n < WINDOWS_PER_AGENT; n++) for (const agent of agents) agent.send(T0 + BigInt(n) * 10_000_000_000n);

  const [, signal] = (await once(first.child, 'exit')) as [number | null, NodeJS.Signals | null];
  assert.equal(signal, 'SIGKILL');
  const ackedAtKill = new Set(acked);
  assert.ok(ackedAtKill.size >= KILL_AFTER_ACKS);
  assert.ok(ackedAtKill.size < AGENTS * WINDOWS_PER_AGENT, 'the kill came before the burst was over');

  // Opened as the next collector would open it: WAL recovery, then an integrity check.
  const db = new Database(path.join(data, 'hotloop.sqlite'));
  try {
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    assert.deepEqual(db.pragma('foreign_key_check'), []);
  } finally {
    db.close();
  }
  const storedAtKill = new Set(agents.flatMap((a) => storedWindows(data, a.host).map((w) => `${a.host} ${w.seq}`)));
  const missing = [...ackedAtKill].filter((k) => !storedAtKill.has(k));
  assert.deepEqual(missing, [], 'every window acked before the kill is stored');
  for (const agent of agents) assert.equal(summaryWindowCount(data, agent.host), storedWindows(data, agent.host).length, `${agent.host}: the hosts summary matches its windows`);

  const second = startHotloop(collectorArgs);
  running.push(second.child);
  await waitFor('every agent to have all its windows acked', () => (agents.every((a) => a.queue.pendingSeqs().length === 0) ? true : undefined));
  for (const agent of agents) {
    const stored = storedWindows(data, agent.host);
    assert.deepEqual(
      stored.map((w) => w.seq),
      oneTo(WINDOWS_PER_AGENT),
      `${agent.host}: every window stored once`,
    );
    assert.equal(summaryWindowCount(data, agent.host), WINDOWS_PER_AGENT);
    assert.ok(
      agent.acks.every((r) => r.ack.stored),
      `${agent.host}: no window was refused (${agent.acks.find((r) => !r.ack.stored)?.ack.error ?? ''})`,
    );
  }
  assert.equal(await stopProcess(second.child), 0);
});
