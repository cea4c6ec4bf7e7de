// Window size, samples per window and uploads per agent per minute: over-limit
// uploads are refused with a reason the agent logs, and the collector keeps serving.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { Uploader } from '../agent/uploader.js';
import { MemoryWindowQueue } from './helpers/memory-window-queue.js';
import { startCollector, type RunningCollector } from '../collector/collector.js';
import { UploadRateLimiter, type UploadLimits } from '../collector/upload-limits.js';
import { newAgentGatewayClient, newQueryClient, type AgentGatewayClient, type UploadAck } from '../proto/wire.js';
import { AgentStreamSession, windowOf } from './helpers/agent-stream.js';
import type { SampleSpec } from './helpers/cpu-profiles.js';
import { capturedLogger } from './helpers/log-lines.js';
import { tempDir } from './helpers/processes.js';

const silent = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const dir = tempDir('upload-limits');
const limits: UploadLimits = { maxWindowBytes: 64 * 1024, maxSamplesPerWindow: 50, uploadsPerMinute: 1, uploadBurst: 4 };
let collector: RunningCollector;
let agents: AgentGatewayClient;

before(async () => {
  collector = await startCollector({ dataDir: dir, grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', log: silent, limits });
  agents = newAgentGatewayClient(collector.grpcAddress);
});

after(async () => {
  agents.close();
  await collector.close();
  rmSync(dir, { recursive: true, force: true });
});

/** `n` distinct stacks, so the pprof has `n` sample rows. */
const distinctStacks = (n: number): SampleSpec[] => Array.from({ length: n }, (_, i) => ({ stack: [`f${i}`, 'main'], pid: 100, comm: 'api', count: 1 }));

function listHosts(): Promise<string[]> {
  const client = newQueryClient(collector.grpcAddress);
  return new Promise((resolve, reject) =>
    client.listHosts({}, (err, res) => {
      client.close();
      if (err || !res) reject(err ?? new Error('no response'));
      else resolve(res.hosts.map((h) => h.host));
    }),
  );
}

test('the token bucket allows a burst, then the sustained rate, per agent', () => {
  let now = 0;
  const limiter = new UploadRateLimiter({ uploadsPerMinute: 6, uploadBurst: 3 }, () => now);
  // 0 = taken; otherwise the milliseconds until the next token (6 a minute: one every 10 s).
  assert.deepEqual([1, 2, 3, 4].map(() => limiter.take('a')), [0, 0, 0, 10_000]);
  assert.equal(limiter.take('b'), 0, 'another agent has its own bucket');
  now += 4_000;
  assert.equal(limiter.take('a'), 6_000, 'the wait shrinks as the bucket refills');
  now += 6_000;
  assert.deepEqual([limiter.take('a'), limiter.take('a')], [0, 10_000]);
  now += 3_600_000; // a long quiet spell refills to the burst, no further
  assert.deepEqual([1, 2, 3, 4].map(() => limiter.take('a')), [0, 0, 0, 10_000]);
});

test('a window over the byte limit, a gzip bomb and one with too many samples are refused with the reason', { timeout: 30_000 }, async () => {
  const s = new AgentStreamSession(agents);
  s.hello('heavy', 'agent-heavy');

  const big = { ...windowOf('heavy', 'agent-heavy', 1), pprofGz: Buffer.concat([gzipSync(Buffer.alloc(0)), Buffer.alloc(limits.maxWindowBytes)]) };
  const bigAck = await s.upload(big);
  assert.equal(bigAck.stored, false);
  assert.equal(bigAck.error, `pprof_gz is ${big.pprofGz.length} bytes, over the collector's limit of ${limits.maxWindowBytes}`);

  // About 32 KiB of gzip that unzips to 32 MiB: stopped at the limit, never unzipped whole.
  const bomb = { ...windowOf('heavy', 'agent-heavy', 2), pprofGz: gzipSync(Buffer.alloc(32 * 1024 * 1024), { level: 9 }) };
  assert.ok(bomb.pprofGz.length < limits.maxWindowBytes);
  const bombAck = await s.upload(bomb);
  assert.equal(bombAck.stored, false);
  assert.equal(bombAck.error, `pprof_gz is not a valid profile: malformed perftools.profiles.Profile (gzip): unzips to more than ${limits.maxWindowBytes} bytes`);

  const crowded = windowOf('heavy', 'agent-heavy', 3, distinctStacks(limits.maxSamplesPerWindow + 1));
  const crowdedAck = await s.upload(crowded);
  assert.equal(crowdedAck.stored, false);
  assert.equal(crowdedAck.error, `pprof has ${limits.maxSamplesPerWindow + 1} samples, over the collector's limit of ${limits.maxSamplesPerWindow} per window`);

  const atLimit = windowOf('heavy', 'agent-heavy', 4, distinctStacks(limits.maxSamplesPerWindow));
  assert.equal((await s.upload(atLimit)).stored, true);
  assert.equal((await s.end()).code, grpc.status.OK);
  assert.deepEqual(await listHosts(), ['heavy']);
});

test('uploads past the per-agent rate are deferred with the reason and a retry time; other agents are unaffected', { timeout: 30_000 }, async () => {
  const s = new AgentStreamSession(agents);
  s.hello('chatty', 'agent-chatty');
  const acks: UploadAck[] = [];
  // The burst plus one: at 1 a minute, no token refills while this runs.
  for (let seq = 1; seq <= limits.uploadBurst + 1; seq++) acks.push(await s.upload(windowOf('chatty', 'agent-chatty', seq)));
  assert.deepEqual(
    acks.map((a) => a.stored),
    [true, true, true, true, false],
  );
  assert.match(acks[4]!.error, /^agent agent-chatty is over the collector's upload rate limit \(bursts of 4, then 1 a minute\); retry in \d+ ms$/);
  assert.ok(acks[4]!.retryAfterMs > 0 && acks[4]!.retryAfterMs <= 60_000, 'at 1 a minute the next token is at most a minute away');
  assert.deepEqual(
    acks.slice(0, 4).map((a) => a.retryAfterMs),
    [0, 0, 0, 0],
  );

  const quiet = new AgentStreamSession(agents);
  quiet.hello('quiet', 'agent-quiet');
  assert.equal((await quiet.upload(windowOf('quiet', 'agent-quiet', 1))).stored, true);
  await Promise.all([s.end(), quiet.end()]);
});

test("the agent's uploader logs the collector's reason for a refused window and drops it", { timeout: 30_000 }, async () => {
  const { log, lines } = capturedLogger();
  const queue = new MemoryWindowQueue(10);
  const ack = await new Promise<UploadAck>((resolve) => {
    const uploader = new Uploader({
      collectorAddress: collector.grpcAddress,
      host: 'crowded-agent',
      agentId: 'agent-crowded',
      version: 'test',
      queue,
      log,
      onAck: (a) => {
        resolve(a);
        void uploader.stop();
      },
    });
    uploader.start();
    uploader.enqueue(windowOf('crowded-agent', 'agent-crowded', 1, distinctStacks(limits.maxSamplesPerWindow + 5)));
  });
  assert.equal(ack.stored, false);
  const refusal = lines.find((l) => l.msg === 'collector refused window');
  assert.deepEqual(refusal && { seq: refusal.seq, reason: refusal.reason }, {
    seq: 1,
    reason: `pprof has ${limits.maxSamplesPerWindow + 5} samples, over the collector's limit of ${limits.maxSamplesPerWindow} per window`,
  });
  assert.deepEqual(queue.pendingSeqs(), []);
});

test('a rate-limited window stays with the agent and is stored once the bucket refills: nothing is lost', { timeout: 60_000 }, async () => {
  const paced = tempDir('upload-limits-paced');
  // Two at once, then one every 250 ms: five windows need three deferrals.
  const c = await startCollector({ dataDir: paced, grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', log: silent, limits: { uploadBurst: 2, uploadsPerMinute: 240 } });
  const { log, lines } = capturedLogger();
  const queue = new MemoryWindowQueue(10);
  const stored = new Set<number>();
  await new Promise<void>((resolve) => {
    const uploader = new Uploader({
      collectorAddress: c.grpcAddress,
      host: 'backlog-agent',
      agentId: 'agent-backlog',
      version: 'test',
      queue,
      log,
      onAck: (a) => {
        if (a.stored) stored.add(a.seq);
        if (stored.size === 5) void uploader.stop().then(resolve);
      },
    });
    uploader.start();
    for (let seq = 1; seq <= 5; seq++) uploader.enqueue(windowOf('backlog-agent', 'agent-backlog', seq));
  });
  assert.deepEqual([...stored].sort(), [1, 2, 3, 4, 5]);
  assert.deepEqual(queue.pendingSeqs(), []);
  assert.ok(lines.some((l) => l.msg === 'collector deferred window; keeping it'), 'the deferral is logged');
  assert.ok(!lines.some((l) => l.msg === 'collector refused window'), 'no window was dropped');
  await c.close();
  rmSync(paced, { recursive: true, force: true });
});

test('limits that are not whole positive numbers are refused at start', async () => {
  await assert.rejects(
    startCollector({ dataDir: dir, grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', log: silent, limits: { uploadsPerMinute: 0 } }),
    /upload limit uploadsPerMinute must be a whole number of at least 1, not 0/,
  );
});
