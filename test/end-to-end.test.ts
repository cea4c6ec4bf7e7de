// The walking skeleton for real: a C program burns a core in a known function,
// a real agent (bpftrace) and collector (SQLite) run on loopback, and the
// `hotloop` client commands return what an on-call engineer would read.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { goPprofTop } from './helpers/go-pprof.js';
import { compileC, freePort, repoRoot, runHotloop, startHotloop, stopProcess, tempDir, waitFor } from './helpers/processes.js';

const host = `e2e-${process.pid}`;
let grpc = '';
let collector: ChildProcess;
let agent: ChildProcess;
let agentLogs: () => string;
let spinner: ChildProcess;

before(async () => {
  // -O0: at -O1 gcc gives the leaf no frame, and the frame-pointer walk then skips main.
  const bin = compileC(readFileSync(path.join(repoRoot, 'test/workloads/spin.c'), 'utf8'), 'spin', ['-O0']);
  spinner = spawn(bin, [], { stdio: 'ignore' });
  grpc = `127.0.0.1:${await freePort()}`;
  const http = `127.0.0.1:${await freePort()}`;
  collector = startHotloop(['collector', '--grpc', grpc, '--http', http, '--data', tempDir('e2e-data')]).child;
  const a = startHotloop(['agent', '--spool', tempDir('agent-spool'), '--http', '127.0.0.1:0', '--collector', grpc, '--host', host, '--frequency', '49', '--window', '2']);
  agent = a.child;
  agentLogs = a.logs;
  // Three windows stored: the first may have started before the spinner was hot.
  await waitFor('three windows from the agent', async () => {
    const r = await runHotloop(['hosts', '--collector', grpc, '--json']);
    if (r.code !== 0) return undefined;
    const hosts = JSON.parse(r.stdout) as { host: string; windows: number }[];
    return (hosts.find((h) => h.host === host)?.windows ?? 0) >= 3 ? true : undefined;
  });
});

after(async () => {
  spinner?.kill('SIGKILL');
  if (agent) assert.equal(await stopProcess(agent), 0, 'agent exits 0 on SIGTERM');
  if (collector) await stopProcess(collector);
});

test('hosts lists the agent host with first and last window times', async () => {
  const r = await runHotloop(['hosts', '--collector', grpc, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const entry = (JSON.parse(r.stdout) as { host: string; first: string; last: string }[]).find((h) => h.host === host);
  assert.ok(entry);
  assert.ok(Date.parse(entry.first) <= Date.parse(entry.last));
  assert.ok(Date.now() - Date.parse(entry.last) < 5 * 60_000, 'last window is recent wall-clock time');
});

test('the known hot function carries most of the spinning pid\'s samples', async () => {
  const r = await runHotloop(['query', '--collector', grpc, '--host', host, '--from', '-2m', '--pid', String(spinner.pid), '--format', 'folded']);
  assert.equal(r.code, 0, r.stderr);
  let total = 0;
  let inSpin = 0;
  for (const line of r.stdout.trim().split('\n')) {
    const sep = line.lastIndexOf(' ');
    const n = Number(line.slice(sep + 1));
    const frames = line.slice(0, sep).split(';');
    total += n;
    if (frames.includes('hotloop_e2e_spin')) inSpin += n;
    assert.equal(frames[0], 'spin', 'folded stacks start with the process name');
  }
  assert.ok(total > 0, 'the spinner was sampled');
  assert.ok(inSpin / total > 0.5, `hotloop_e2e_spin has ${inSpin} of ${total} samples`);
  assert.match(r.stdout, /main;hotloop_e2e_spin \d+/, 'caller and callee in order, root first');
});

test('top shows the hot function and kernel frames carry real names', async () => {
  const r = await runHotloop(['query', '--collector', grpc, '--host', host, '--from', '-2m', '--format', 'top', '--nodes', '200']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /samples total/);
  assert.match(r.stdout, /hotloop_e2e_spin/);
  // Something on this host entered the kernel (the agent itself reads /proc): a named kernel symbol shows.
  const kallsyms = new Set(
    readFileSync('/proc/kallsyms', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[2]),
  );
  const names = r.stdout.split('\n').slice(2).map((l) => l.trim().split(/\s+/).slice(4).join(' '));
  assert.ok(names.some((n) => kallsyms.has(n)), 'at least one kernel function is named');
});

test('pprof output is gzipped and go tool pprof reads it with the names', async () => {
  const file = path.join(tempDir('e2e-out'), 'cpu.pb.gz');
  const r = await runHotloop(['query', '--collector', grpc, '--host', host, '--from', '-2m', '--format', 'pprof', '-o', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(gunzipSync(readFileSync(file)).length > 0);
  const top = goPprofTop(file);
  assert.match(top, /hotloop_e2e_spin/);
});

test('an unknown host and an empty range are clear messages with exit code 1', async () => {
  const unknown = await runHotloop(['query', '--collector', grpc, '--host', 'no-such-host', '--from', '-2m']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /unknown host no-such-host/);
  const empty = await runHotloop(['query', '--collector', grpc, '--host', host, '--from', '2001-01-01T00:00:00Z', '--to', '2001-01-01T01:00:00Z', '--format', 'folded']);
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /no (windows|samples)/i);
  assert.equal(empty.stdout, '');
});

test('the agent logs JSON lines naming its backend', () => {
  const lines = agentLogs().trim().split('\n').map((l) => JSON.parse(l) as { msg: string; backend?: string });
  const started = lines.find((l) => l.msg === 'agent started');
  assert.equal(started?.backend, 'bpftrace');
});
