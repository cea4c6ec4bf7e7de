import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { startCollector, type RunningCollector } from '../collector/collector.js';
import { SqliteStore } from '../collector/sqlite-store.js';
import { decodeProfile, encodeProfileGz } from '../proto/pprof.js';
import {
  codecs,
  newAgentGatewayClient,
  newQueryClient,
  type AgentGatewayClient,
  type QueryClient,
  type QueryProfileRequest,
  type QueryProfileResponse,
} from '../proto/wire.js';
import { Uploader } from '../agent/uploader.js';
import { AgentStreamSession, windowOf } from './helpers/agent-stream.js';
import { capturedLogger } from './helpers/log-lines.js';
import { MemoryWindowQueue } from './helpers/memory-window-queue.js';
import { cpuProfile, stackCounts, type SampleSpec } from './helpers/cpu-profiles.js';
import { repoRoot, tempDir } from './helpers/processes.js';

const T0 = 1_700_000_000_000_000_000n;
const SECOND = 1_000_000_000n;
const silent = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

const dataDir = tempDir('collector-grpc');
let collector: RunningCollector;
let agents: AgentGatewayClient;
let queries: QueryClient;
const cleanups: (() => Promise<void> | void)[] = [];

function session(client = agents): AgentStreamSession {
  const s = new AgentStreamSession(client);
  cleanups.push(() => void s.call.cancel());
  return s;
}

/** Rows committed for (agent, seq), read through a separate connection to the database file. */
function committedRows(dir: string, agentId: string, seq: number): number {
  const db = new Database(path.join(dir, 'hotloop.sqlite'), { readonly: true });
  try {
    const row = db.prepare('SELECT count(*) AS n FROM windows WHERE agent_id = ? AND seq = ?').get(agentId, seq) as { n: number };
    return row.n;
  } finally {
    db.close();
  }
}

function queryProfile(req: Partial<QueryProfileRequest>): Promise<QueryProfileResponse> {
  const full: QueryProfileRequest = { host: '', fromUnixNanos: T0, toUnixNanos: T0 + 1000n * SECOND, pid: 0, comm: '', ...req };
  return new Promise((resolve, reject) => queries.queryProfile(full, (err, res) => (err || !res ? reject(err ?? new Error('no response')) : resolve(res))));
}

function listHosts(): Promise<string[]> {
  return new Promise((resolve, reject) => queries.listHosts({}, (err, res) => (err || !res ? reject(err ?? new Error('no response')) : resolve(res.hosts.map((h) => h.host)))));
}

const api = (count: number): SampleSpec => ({ stack: ['spin', 'main'], pid: 100, comm: 'api', count });
const db = (count: number): SampleSpec => ({ stack: ['work', 'main'], pid: 200, comm: 'db', count });

before(async () => {
  collector = await startCollector({ dataDir, grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', log: silent });
  agents = newAgentGatewayClient(collector.grpcAddress);
  queries = newQueryClient(collector.grpcAddress);
});

after(async () => {
  for (const c of cleanups) await c();
  agents.close();
  queries.close();
  await collector.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test('the returned addresses carry the ports actually bound', () => {
  assert.match(collector.grpcAddress, /^127\.0\.0\.1:[1-9]\d*$/);
  assert.match(collector.httpAddress, /^127\.0\.0\.1:[1-9]\d*$/);
});

test('/healthz answers ok', async () => {
  const res = await fetch(`http://${collector.httpAddress}/healthz`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'ok\n');
  assert.equal((await fetch(`http://${collector.httpAddress}/nope`)).status, 404);
});

test('windows are acked once committed, and a resent window is a duplicate stored once', { timeout: 30_000 }, async () => {
  const s = session();
  s.hello('web-1', 'agent-web-1');
  const w0 = windowOf('web-1', 'agent-web-1', 0, [api(3), db(1)]);
  assert.deepEqual(await s.upload(w0), { agentId: 'agent-web-1', seq: 0, stored: true, duplicate: false, error: '', retryAfterMs: 0 });
  assert.equal(committedRows(dataDir, 'agent-web-1', 0), 1, 'committed by the time the ack arrives');
  assert.deepEqual(await s.upload(windowOf('web-1', 'agent-web-1', 1, [api(5)])), { agentId: 'agent-web-1', seq: 1, stored: true, duplicate: false, error: '', retryAfterMs: 0 });

  const agent = collector.connectedAgents().get('web-1');
  assert.equal(agent?.agentId, 'agent-web-1');
  assert.equal(agent?.version, 'test');

  assert.deepEqual(await s.upload(w0), { agentId: 'agent-web-1', seq: 0, stored: true, duplicate: true, error: '', retryAfterMs: 0 });
  assert.equal(committedRows(dataDir, 'agent-web-1', 0), 1);
  assert.equal((await s.end()).code, grpc.status.OK);
  while (collector.connectedAgents().has('web-1')) await sleep(10);
});

test('a window the agent dropped from its queue while it was on the wire is reported as stored after all', { timeout: 30_000 }, async () => {
  const { log, lines } = capturedLogger();
  // Room for one window: queueing the second drops the first, which the uploader has already written to the stream.
  const queue = new MemoryWindowQueue(1);
  const acked: number[] = [];
  const uploader = new Uploader({ collectorAddress: collector.grpcAddress, host: 'queue-1', agentId: 'agent-queue-1', version: 'test', queue, log, onAck: (ack) => acked.push(ack.seq) });
  cleanups.push(() => uploader.stop());
  uploader.start();
  uploader.enqueue(windowOf('queue-1', 'agent-queue-1', 1, [api(2)]));
  uploader.enqueue(windowOf('queue-1', 'agent-queue-1', 2, [api(3)]));
  assert.equal(queue.dropped, 1);
  while (acked.length < 2) await sleep(10);
  assert.deepEqual([committedRows(dataDir, 'agent-queue-1', 1), committedRows(dataDir, 'agent-queue-1', 2)], [1, 1]);
  const afterAll = lines.filter((l) => l.msg === 'a window dropped from the spool while in flight was stored after all').map((l) => l.seq);
  assert.deepEqual(afterAll, [1], 'only the dropped window is reported, once');
  assert.deepEqual(queue.pendingSeqs(), [], 'the kept window is forgotten once acked');
});

test('an upload answering a capture is stored apart: range queries and episodes never see it, the capture id finds it', { timeout: 30_000 }, async () => {
  const s = session();
  s.hello('web-4', 'agent-web-4');
  assert.equal((await s.upload(windowOf('web-4', 'agent-web-4', 0, [api(2)]))).stored, true);
  const capture = { ...windowOf('web-4', 'agent-web-4', 1, [api(500)]), captureRequestId: 'cap-1' };
  assert.deepEqual(await s.upload(capture), { agentId: 'agent-web-4', seq: 1, stored: true, duplicate: false, error: '', retryAfterMs: 0 });
  assert.equal((await s.upload(capture)).duplicate, true, 'a resent capture is stored once');
  assert.equal(committedRows(dataDir, 'agent-web-4', 1), 0, 'not among the windows');

  const range = await queryProfile({ host: 'web-4' });
  assert.equal(range.samples, 2, 'the range query merges the continuous window only');
  const byId = await queryProfile({ host: 'web-4', captureRequestId: 'cap-1' });
  assert.equal(byId.samples, 500);
  await assert.rejects(queryProfile({ host: 'web-3', captureRequestId: 'cap-1' }), /has no stored capture cap-1/, 'another host cannot read it');

  const bad = await s.upload({ ...windowOf('web-4', 'agent-web-4', 2), captureRequestId: '../etc/passwd' });
  assert.equal(bad.stored, false);
  assert.match(bad.error, /^capture_request_id must be 1-64 characters/);
  assert.equal((await s.end()).code, grpc.status.OK);
});

test('a window whose pprof is garbage is refused with the reason and not stored', { timeout: 30_000 }, async () => {
  const s = session();
  s.hello('web-2', 'agent-web-2');
  const garbage = { ...windowOf('web-2', 'agent-web-2', 0, [api(1)]), pprofGz: Buffer.from('this is not a profile') };
  const ack = await s.upload(garbage);
  assert.equal(ack.stored, false);
  assert.match(ack.error, /pprof_gz is not a valid profile: malformed perftools\.profiles\.Profile/);
  assert.equal(committedRows(dataDir, 'agent-web-2', 0), 0);

  // The stream is still good: the same seq with a real profile is stored.
  assert.equal((await s.upload(windowOf('web-2', 'agent-web-2', 0, [api(1)]))).stored, true);
  assert.equal(committedRows(dataDir, 'agent-web-2', 0), 1);
});

test('windows that break the stream protocol are refused with the reason', { timeout: 30_000 }, async () => {
  const early = session();
  const beforeHello = await early.upload(windowOf('web-3', 'agent-web-3', 0, [api(1)]));
  assert.deepEqual([beforeHello.stored, beforeHello.error], [false, 'window sent before hello; send hello first']);

  early.hello('web-3', 'agent-web-3');
  const foreign = await early.upload(windowOf('web-9', 'agent-web-9', 0, [api(1)]));
  assert.equal(foreign.stored, false);
  assert.match(foreign.error, /from agent agent-web-9 on host web-9, but this stream said hello as agent agent-web-3 on host web-3/);

  const heap = { ...windowOf('web-3', 'agent-web-3', 1, []), pprofGz: encodeProfileGz({ ...cpuProfile([], T0, SECOND), sampleType: [] }) };
  const wrongShape = await early.upload(heap);
  assert.equal(wrongShape.stored, false);
  assert.match(wrongShape.error, /pprof has sample types \[\] per cpu\/nanoseconds; hotloop windows carry \[samples\/count, cpu\/nanoseconds\]/);
  assert.equal(committedRows(dataDir, 'agent-web-9', 0) + committedRows(dataDir, 'agent-web-3', 1), 0);

  const twice = session();
  twice.hello('web-4', 'agent-web-4');
  twice.hello('web-4', 'agent-web-4');
  const status = await twice.status;
  assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
  assert.match(status.details, /hello sent twice/);
});

test('raw garbage on the stream fails that call only; the collector keeps serving', { timeout: 30_000 }, async () => {
  const RawGateway = grpc.makeGenericClientConstructor(
    {
      connect: {
        path: '/hotloop.v1.AgentGateway/Connect',
        requestStream: true,
        responseStream: true,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    },
    'RawAgentGateway',
  );
  const raw = new RawGateway(collector.grpcAddress, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    connect(): grpc.ClientDuplexStream<Buffer, Buffer>;
  };
  cleanups.push(() => raw.close());
  const call = raw.connect();
  call.on('error', () => {}); // the status below carries the failure
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  call.write(codecs.agentMessage.encode({ hello: { host: 'raw-host', agentId: 'raw-agent', version: 'x' } }));
  // Field 1 with wire type 7, which does not exist: protobuf decoding throws.
  call.write(Buffer.from([0x0f, 0xff, 0xff, 0xff]));
  assert.equal((await status).code, grpc.status.INTERNAL);
  while (collector.connectedAgents().has('raw-host')) await sleep(10);

  assert.ok((await listHosts()).includes('web-1'));
  const next = session();
  next.hello('web-5', 'agent-web-5');
  assert.equal((await next.upload(windowOf('web-5', 'agent-web-5', 0, [api(1)]))).stored, true);
});

test('QueryProfile merges the host\'s windows and filters by pid and comm', { timeout: 30_000 }, async () => {
  const all = await queryProfile({ host: 'web-1' });
  assert.equal(all.windows, 2);
  assert.equal(all.samples, 9);
  const merged = decodeProfile(all.pprofGz);
  assert.deepEqual(stackCounts(merged), new Map([['100/api main;spin', 8], ['200/db main;work', 1]]));
  assert.equal(merged.timeNanos, T0);
  assert.equal(merged.durationNanos, 20n * SECOND);

  const dbOnly = await queryProfile({ host: 'web-1', pid: 200 });
  assert.deepEqual([dbOnly.windows, dbOnly.samples], [1, 1]);
  assert.deepEqual(stackCounts(decodeProfile(dbOnly.pprofGz)), new Map([['200/db main;work', 1]]));

  const apiOnly = await queryProfile({ host: 'web-1', comm: 'api', fromUnixNanos: T0 + 15n * SECOND, toUnixNanos: T0 + 16n * SECOND });
  assert.deepEqual([apiOnly.windows, apiOnly.samples], [1, 5]);
});

test('QueryProfile answers NOT_FOUND with a clear message for unknown hosts, empty ranges and unmatched filters', async () => {
  await assert.rejects(queryProfile({ host: 'nope' }), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.NOT_FOUND);
    assert.match(err.details, /^unknown host nope \(known: .*web-1.*\)$/);
    return true;
  });
  await assert.rejects(queryProfile({ host: 'web-1', fromUnixNanos: 978_307_200_000_000_000n, toUnixNanos: 978_310_800_000_000_000n }), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.NOT_FOUND);
    assert.equal(err.details, 'host web-1 has no windows in [2001-01-01T00:00:00.000000000Z, 2001-01-01T01:00:00.000000000Z]');
    return true;
  });
  await assert.rejects(queryProfile({ host: 'web-1', pid: 999, comm: 'api' }), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.NOT_FOUND);
    assert.match(err.details, /^host web-1 has 2 windows in \[.*\] but no samples of pid 999 and comm "api"$/);
    return true;
  });
  await assert.rejects(queryProfile({ host: 'web-1', fromUnixNanos: T0 + SECOND, toUnixNanos: T0 }), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    return true;
  });
});

test('a stored window that has become unreadable is reported as DATA_LOSS, naming it', async () => {
  const s = session();
  s.hello('web-6', 'agent-web-6');
  assert.equal((await s.upload(windowOf('web-6', 'agent-web-6', 0, [api(1)]))).stored, true);
  const file = new Database(path.join(dataDir, 'hotloop.sqlite'));
  file.prepare("UPDATE windows SET pprof_gz = x'0f0f' WHERE agent_id = 'agent-web-6'").run();
  file.close();
  await assert.rejects(queryProfile({ host: 'web-6' }), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.DATA_LOSS);
    assert.match(err.details, /^stored window \d+ \(agent agent-web-6 seq 0\) is unreadable: /);
    return true;
  });
});

test('close() lets open agent streams finish with OK and keeps what was acked', { timeout: 30_000 }, async () => {
  const dir = tempDir('collector-close');
  const c = await startCollector({ dataDir: dir, grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', log: silent });
  const client = newAgentGatewayClient(c.grpcAddress);
  try {
    const s = session(client);
    s.hello('closing', 'agent-closing');
    assert.equal((await s.upload(windowOf('closing', 'agent-closing', 0, [api(2)]))).stored, true);
    await c.close();
    assert.equal((await s.status).code, grpc.status.OK);
    const reopened = new SqliteStore(path.join(dir, 'hotloop.sqlite'));
    assert.deepEqual((await reopened.listHosts()).map((h) => [h.host, h.windows]), [['closing', 1]]);
    await reopened.close();
  } finally {
    client.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an acked window survives SIGKILL of the collector process', { timeout: 60_000 }, async () => {
  const dir = tempDir('collector-kill');
  const moduleUrl = new URL('dist/collector/collector.js', `file://${repoRoot}`).href;
  const script = `
    import { startCollector } from ${JSON.stringify(moduleUrl)};
    import { pino } from 'pino';
    const c = await startCollector({ dataDir: process.env.DATA_DIR, grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', log: pino({ level: 'silent' }) });
    process.stdout.write(c.grpcAddress + '\\n');`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, env: { ...process.env, DATA_DIR: dir }, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  const client = { current: null as AgentGatewayClient | null };
  try {
    const [firstLine] = (await once(child.stdout, 'data')) as [Buffer];
    client.current = newAgentGatewayClient(firstLine.toString().trim());
    const s = session(client.current);
    s.hello('killed', 'agent-killed');
    assert.equal((await s.upload(windowOf('killed', 'agent-killed', 0, [api(4)]))).stored, true);
    child.kill('SIGKILL');
    await exited;
    const reopened = new SqliteStore(path.join(dir, 'hotloop.sqlite'));
    const windows = [];
    for await (const w of reopened.windowsFor('killed', T0, T0 + 10n * SECOND)) windows.push(w);
    await reopened.close();
    assert.deepEqual(windows.map((w) => [w.agentId, w.seq, w.sampleCount]), [['agent-killed', 0, 4]]);
  } finally {
    child.kill('SIGKILL');
    client.current?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
