// Window size, samples per window and uploads per agent per minute: over-limit
// uploads are refused with a reason the agent logs, and the collector keeps serving.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { Uploader } from '../agent/uploader.js';
import { MemoryWindowQueue } from '../agent/window-queue.js';
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
  assert.deepEqual([1, 2, 3, 4].map(() => limiter.take('a')), [true, true, true, false]);
  assert.equal(limiter.take('b'), true, 'another agent has its own bucket');
  now += 10_000; // 6 a minute: one upload every 10 s
  assert.deepEqual([limiter.take('a'), limiter.take('a')], [true, false]);
  now += 3_600_000; // a long quiet spell refills to the burst, no further
  assert.deepEqual([1, 2, 3, 4].map(() => limiter.take('a')), [true, true, true, false]);
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

test('uploads past the per-agent rate are refused with the reason; other agents are unaffected', { timeout: 30_000 }, async () => {
  const s = new AgentStreamSession(agents);
  s.hello('chatty', 'agent-chatty');
  const acks: UploadAck[] = [];
  // The burst plus one: at 1 a minute, no token refills while this runs.
  for (let seq = 1; seq <= limits.uploadBurst + 1; seq++) acks.push(await s.upload(windowOf('chatty', 'agent-chatty', seq)));
  assert.deepEqual(
    acks.map((a) => a.stored),
    [true, true, true, true, false],
  );
  assert.equal(acks[4]!.error, "agent agent-chatty is over the collector's upload rate limit (bursts of 4, then 1 a minute)");

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

test('limits that are not whole positive numbers are refused at start', async () => {
  await assert.rejects(
    startCollector({ dataDir: dir, grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', log: silent, limits: { uploadsPerMinute: 0 } }),
    /upload limit uploadsPerMinute must be a whole number of at least 1, not 0/,
  );
});
