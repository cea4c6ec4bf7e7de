// A real agent spools onto a real tmpfs of a few MiB, nearly full, while its
// collector is down. When the filesystem refuses a window the agent drops its
// oldest spooled windows (log line and metric), keeps capturing, and once the
// collector starts, sends every window it kept.
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, statfsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { capturedSeqs, logLines, oneTo, scrapeMetric, storedWindows } from './helpers/durability.js';
import { freePort, startHotloop, stopProcess, tempDir, waitFor } from './helpers/processes.js';

/** Room left for the spool: a handful of 1-second windows. */
const SPOOL_ROOM_BYTES = 128 * 1024;
const host = `diskfull-${process.pid}`;
const mountPoint = tempDir('tiny-fs');
const running: ChildProcess[] = [];
let mounted = false;

after(async () => {
  for (const child of running) await stopProcess(child);
  if (mounted) execFileSync('umount', [mountPoint]);
});

test('a full spool filesystem drops the oldest windows, says so, and the agent keeps going', { timeout: 240_000 }, async () => {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountPoint]);
  mounted = true;
  const { bavail, bsize } = statfsSync(mountPoint);
  writeFileSync(path.join(mountPoint, 'filler'), Buffer.alloc(bavail * bsize - SPOOL_ROOM_BYTES));
  const spool = path.join(mountPoint, 'spool');
  mkdirSync(spool);

  const grpc = `127.0.0.1:${await freePort()}`;
  const agentHttp = `127.0.0.1:${await freePort()}`;
  const agent = startHotloop(['agent', '--collector', grpc, '--host', host, '--window', '1', '--frequency', '99', '--spool', spool, '--http', agentHttp]);
  running.push(agent.child);

  const drops = () => logLines(agent.logs()).filter((l) => l.msg === 'dropped a spooled window before the collector acked it');
  await waitFor('the filesystem to fill and a window to be dropped', () => (drops().length > 0 ? true : undefined));
  const capturedAtFirstDrop = Math.max(...capturedSeqs(agent.logs()));
  await waitFor('five more windows captured after the first drop', () => (Math.max(...capturedSeqs(agent.logs())) >= capturedAtFirstDrop + 5 ? true : undefined));
  assert.equal(agent.child.exitCode, null, 'the agent is still running');

  const dropped = drops();
  assert.ok(dropped.every((d) => d.reason === 'disk-full'), `reasons: ${dropped.map((d) => String(d.reason)).join(', ')}`);
  // Nothing was ever acked, so dropping oldest first means exactly seqs 1..k.
  assert.deepEqual(
    dropped.map((d) => Number(d.seq)),
    oneTo(dropped.length),
    'the oldest windows went first',
  );
  assert.equal(dropped.at(-1)?.dropped, dropped.length, 'each log line carries the running count');
  // The agent keeps dropping while we look; the metric is read after the log lines, and the log then catches up with it.
  const droppedMetric = (await scrapeMetric(agentHttp, 'hotloop_agent_windows_dropped_total{reason="disk-full"}')) ?? 0;
  assert.ok(droppedMetric >= dropped.length, `metric ${droppedMetric}, log lines ${dropped.length}`);
  await waitFor('a log line for every drop the metric counted', () => (drops().length >= droppedMetric ? true : undefined));

  // The collector comes up: the windows the agent kept all arrive. A window the
  // spool deleted while it was already on the wire may arrive too; the agent says so.
  const recoveries = () =>
    logLines(agent.logs())
      .filter((l) => l.msg === 'a window dropped from the spool while in flight was stored after all')
      .map((l) => Number(l.seq));
  const data = tempDir('diskfull-data');
  running.push(startHotloop(['collector', '--grpc', grpc, '--http', `127.0.0.1:${await freePort()}`, '--data', data]).child);
  const { seqs, stored, droppedNow, recovered } = await waitFor('the kept windows stored, and every stored dropped window explained', () => {
    const seqs = capturedSeqs(agent.logs());
    const droppedNow = drops().map((d) => Number(d.seq));
    const stored = storedWindows(data, host).map((w) => w.seq);
    const recovered = recoveries();
    const unexplained = stored.filter((s) => droppedNow.includes(s) && !recovered.includes(s));
    return (stored.at(-1) ?? 0) >= Math.max(...seqs) && unexplained.length === 0 ? { seqs, stored, droppedNow, recovered } : undefined;
  });
  assert.ok(
    recovered.every((s) => droppedNow.includes(s)),
    `only dropped windows are reported as stored after all: ${recovered.join(', ')}`,
  );
  const kept = seqs.filter((s) => !droppedNow.includes(s));
  const expected = [...kept, ...recovered.filter((s) => s <= Math.max(...seqs))].sort((a, b) => a - b);
  assert.deepEqual(
    stored.filter((s) => s <= Math.max(...seqs)),
    expected,
    'stored: every captured window that was not dropped (plus those reported stored after all), once',
  );
  assert.equal(await stopProcess(agent.child), 0, 'the agent exits 0 on SIGTERM');
});
