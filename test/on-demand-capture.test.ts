// On-demand captures for real: `hotloop capture` asks the collector, the
// collector forwards the request down the host's agent stream, the agent runs
// bpf/oncpu.bt with the request's numbers for one window and uploads it, and
// the caller gets the profile back. Refusals come back as messages, at once.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { newQueryClient, type RequestCaptureRequest } from '../proto/wire.js';
import { capturedSeqs, logLines, scrapeMetric, storedWindows } from './helpers/durability.js';
import { compileC, freePort, repoRoot, runHotloop, startHotloop, stopProcess, tempDir, waitFor } from './helpers/processes.js';

const host = `capture-${process.pid}`;
const data = tempDir('capture-data');
let grpcAddress = '';
let collectorHttp = '';
let collector: ChildProcess;
let agent: { child: ChildProcess; logs: () => string };
let spinner: ChildProcess;

before(async () => {
  // -O0: at -O1 gcc gives the leaf no frame, and the frame-pointer walk then skips main.
  const bin = compileC(readFileSync(path.join(repoRoot, 'test/workloads/spin.c'), 'utf8'), 'spin', ['-O0']);
  spinner = spawn(bin, [], { stdio: 'ignore' });
  grpcAddress = `127.0.0.1:${await freePort()}`;
  collectorHttp = `127.0.0.1:${await freePort()}`;
  collector = startHotloop(['collector', '--grpc', grpcAddress, '--http', collectorHttp, '--data', data]).child;
  agent = startHotloop(['agent', '--spool', tempDir('capture-spool'), '--http', '127.0.0.1:0', '--collector', grpcAddress, '--host', host, '--window', '5']);
  // A stored window means the agent's stream is open.
  await waitFor('a first window from the agent', () => (storedWindows(data, host).length > 0 ? true : undefined));
});

after(async () => {
  spinner?.kill('SIGKILL');
  if (agent && agent.child.exitCode === null) await stopProcess(agent.child);
  if (collector) await stopProcess(collector);
});

const agentLog = (msg: string) => logLines(agent.logs()).filter((l) => l.msg === msg);

/** Folded lines as [frames, count]. */
function folded(text: string): [string[], number][] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const sep = line.lastIndexOf(' ');
      return [line.slice(0, sep).split(';'), Number(line.slice(sep + 1))];
    });
}

test('a capture of one pid returns that process\'s stacks, stored apart from the continuous windows', { timeout: 120_000 }, async () => {
  const out = path.join(tempDir('capture-out'), 'capture.folded');
  const r = await runHotloop(['capture', '--collector', grpcAddress, '--host', host, '--pid', String(spinner.pid), '--duration', '2', '--frequency', '199', '--format', 'folded', '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  const requestId = /capture ([0-9a-f-]{36})/.exec(r.stderr)?.[1];
  assert.ok(requestId, `request id in: ${r.stderr}`);

  const stacks = folded(readFileSync(out, 'utf8'));
  const total = stacks.reduce((n, [, c]) => n + c, 0);
  const inSpin = stacks.filter(([frames]) => frames.includes('hotloop_e2e_spin')).reduce((n, [, c]) => n + c, 0);
  assert.ok(total > 0);
  assert.ok(stacks.every(([frames]) => frames[0] === 'spin'), `only the spinner's stacks: ${stacks.map(([f]) => f[0]).join(', ')}`);
  assert.ok(inSpin / total > 0.9, `hotloop_e2e_spin carries ${inSpin} of ${total} samples`);

  // The same capture again, by its id.
  const again = await runHotloop(['query', '--collector', grpcAddress, '--host', host, '--capture', requestId, '--format', 'folded']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout, readFileSync(out, 'utf8'));

  // Its upload went to the captures table, not among the windows a range query merges.
  const [queued] = agentLog('on-demand capture queued for upload').filter((l) => l.requestId === requestId);
  assert.ok(queued, 'the agent logged the upload');
  assert.ok(!capturedSeqs(agent.logs()).includes(Number(queued.seq)), 'the capture is not a continuous window');
  const db = new Database(path.join(data, 'hotloop.sqlite'), { readonly: true });
  try {
    const row = db.prepare('SELECT host, seq FROM captures WHERE request_id = ?').get(requestId) as { host: string; seq: number } | undefined;
    assert.deepEqual(row, { host, seq: Number(queued.seq) });
  } finally {
    db.close();
  }
  assert.ok(!storedWindows(data, host).some((w) => w.seq === Number(queued.seq)));
  assert.equal(await scrapeMetric(collectorHttp, 'hotloop_collector_captures_total{outcome="delivered"}'), 1, 'counted on the collector\'s /metrics');
});

test('a capture of a pid that is not running, or of a host without an agent, is refused with the reason', { timeout: 60_000 }, async () => {
  const gone = await runHotloop(['capture', '--collector', grpcAddress, '--host', host, '--pid', '4194303', '--duration', '1']);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, new RegExp(`the agent of host ${host} could not run the capture: pid 4194303 is not running on this host`));

  const nobody = await runHotloop(['capture', '--collector', grpcAddress, '--host', 'no-such-host', '--duration', '1']);
  assert.equal(nobody.code, 1);
  assert.match(nobody.stderr, /no agent of host no-such-host is connected/);
  assert.equal(await scrapeMetric(collectorHttp, 'hotloop_collector_captures_total{outcome="agent-failed"}'), 1);
  assert.equal(await scrapeMetric(collectorHttp, 'hotloop_collector_captures_total{outcome="no-agent"}'), 1);

  const unknown = await runHotloop(['query', '--collector', grpcAddress, '--host', host, '--capture', 'not-a-capture']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /has no stored capture not-a-capture/);
});

test('numbers out of range are refused by the collector before any agent hears of them', { timeout: 30_000 }, async () => {
  const client = newQueryClient(grpcAddress);
  const call = (req: RequestCaptureRequest) =>
    new Promise<grpc.ServiceError>((resolve, reject) => client.requestCapture(req, (err) => (err ? resolve(err) : reject(new Error('accepted')))));
  const started = agentLog('on-demand capture started').length;
  try {
    for (const [req, field] of [
      [{ host, durationSeconds: 0, frequencyHz: 99, pid: 0 }, 'durationSeconds'],
      [{ host, durationSeconds: 301, frequencyHz: 99, pid: 0 }, 'durationSeconds'],
      [{ host, durationSeconds: 1, frequencyHz: 5000, pid: 0 }, 'frequencyHz'],
      [{ host, durationSeconds: 1, frequencyHz: 99, pid: 5_000_000 }, 'pid'],
    ] as const) {
      const err = await call(req);
      assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
      assert.match(err.details, new RegExp(`^${field} \\d+ is outside`));
    }
  } finally {
    client.close();
  }
  assert.equal(agentLog('on-demand capture started').length, started, 'no capture started on the agent');
});

test('captures run one at a time: a second request while one runs is refused, the first completes', { timeout: 120_000 }, async () => {
  const first = runHotloop(['capture', '--collector', grpcAddress, '--host', host, '--duration', '4', '--format', 'folded']);
  const startedBefore = agentLog('on-demand capture started').length;
  await waitFor('the first capture to start', () => (agentLog('on-demand capture started').length > startedBefore ? true : undefined));
  const second = await runHotloop(['capture', '--collector', grpcAddress, '--host', host, '--duration', '1']);
  assert.equal(second.code, 1);
  assert.match(second.stderr, /is still running on this agent; captures run one at a time/);
  const done = await first;
  assert.equal(done.code, 0, done.stderr);
  assert.ok(folded(done.stdout).some(([frames]) => frames.includes('hotloop_e2e_spin')), 'the whole-host capture shows the spinner');
});

test('an agent stopped during a capture tells the caller instead of leaving it waiting', { timeout: 120_000 }, async () => {
  const pending = runHotloop(['capture', '--collector', grpcAddress, '--host', host, '--duration', '60']);
  const startedBefore = agentLog('on-demand capture started').length;
  await waitFor('the capture to start', () => (agentLog('on-demand capture started').length > startedBefore ? true : undefined));
  assert.equal(await stopProcess(agent.child), 0, 'the agent exits 0 on SIGTERM');
  const r = await pending;
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`the agent of host ${host} could not run the capture: the agent is stopping`));
});
