// Fuzzes a real collector's upload stream (AgentGateway.Connect over real
// gRPC) with random bytes, truncated messages, windows that are wrong in every
// way the gateway checks, and messages over the size limit. Each gets an
// error (a refusing ack or a failed stream); the collector keeps serving, and
// the windows stored before are untouched.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { CollectorClient } from '../cli/collector-client.js';
import { codecs, MAX_MESSAGE_BYTES, type CollectorMessage, type UploadAck, type WindowUpload } from '../proto/wire.js';
import { decodeProfile } from '../proto/pprof.js';
import { scrapeMetric } from './helpers/durability.js';
import { freePort, startHotloop, stopProcess, tempDir, waitFor } from './helpers/processes.js';
import { SimulatedAgent, simulatedWindow } from './helpers/simulated-agents.js';

const MAX_MESSAGES = 2_000;
const MAX_MS = 20_000;
const BATCH = 100;
const CONCURRENCY = 8;
const OVERSIZED_MESSAGES = 3;
const SEED = Number(process.env.HOTLOOP_FUZZ_SEED ?? 20_261_122);
const T0 = BigInt(Date.now() - 600_000) * 1_000_000n;
/** Fixed, so a seed gives the same bytes on every run. */
const FUZZ_T0 = 1_800_000_000_000_000_000n;

/** A Connect stream that sends raw bytes, so the fuzz reaches the server's decoder as it is. */
const rawGateway = {
  connect: {
    path: '/hotloop.v1.AgentGateway/Connect',
    requestStream: true,
    responseStream: true,
    requestSerialize: (bytes: Buffer) => bytes,
    requestDeserialize: (bytes: Buffer) => bytes,
    responseSerialize: (m: CollectorMessage) => codecs.collectorMessage.encode(m),
    responseDeserialize: (bytes: Buffer) => codecs.collectorMessage.decode(bytes),
  },
} satisfies grpc.ServiceDefinition;
type RawGatewayClient = grpc.Client & { connect(metadata: grpc.Metadata, options: grpc.CallOptions): grpc.ClientDuplexStream<Buffer, CollectorMessage> };
const RawGatewayCtor = grpc.makeGenericClientConstructor(rawGateway, 'AgentGateway');

type Answer = { ack: UploadAck } | { status: grpc.StatusObject };

/** mulberry32: a seeded generator, so a failing run can be replayed with HOTLOOP_FUZZ_SEED. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const seedHost = `fuzz-seed-${process.pid}`;
let collector: ChildProcess;
let grpcAddress = '';
let httpAddress = '';
let raw: RawGatewayClient;
let queries: CollectorClient;

before(async () => {
  grpcAddress = `127.0.0.1:${await freePort()}`;
  httpAddress = `127.0.0.1:${await freePort()}`;
  collector = startHotloop(['collector', '--grpc', grpcAddress, '--http', httpAddress, '--data', tempDir('fuzz-data')]).child;
  const seeder = new SimulatedAgent(seedHost, grpcAddress);
  for (let i = 0; i < 5; i++) seeder.send(T0 + BigInt(i) * 10_000_000_000n);
  await waitFor('the seed windows acked', () => (seeder.acks.length === 5 ? true : undefined));
  assert.ok(seeder.acks.every((r) => r.ack.stored));
  await seeder.stop();
  raw = new RawGatewayCtor(grpcAddress, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 }) as unknown as RawGatewayClient;
  queries = new CollectorClient(grpcAddress);
});

after(async () => {
  raw?.close();
  queries?.close();
  if (collector) await stopProcess(collector);
});

/** Says hello as `agentId`, then sends `payload`; resolves with the first ack or the stream's status. */
function answerTo(agentId: string, payload: Buffer): Promise<Answer> {
  const call = raw.connect(new grpc.Metadata(), { deadline: Date.now() + 30_000 });
  return new Promise((resolve) => {
    call.on('data', (m: CollectorMessage) => {
      if (!m.ack) return;
      resolve({ ack: m.ack });
      call.cancel();
    });
    call.on('status', (status: grpc.StatusObject) => resolve({ status }));
    call.on('error', () => {});
    call.write(codecs.agentMessage.encode({ hello: { host: 'fuzz', agentId, version: 'fuzz' } }));
    call.write(payload);
  });
}

function isError(answer: Answer): boolean {
  if ('ack' in answer) return !answer.ack.stored && !answer.ack.duplicate && answer.ack.error !== '';
  const { code } = answer.status;
  // DEADLINE_EXCEEDED would mean no answer at all; CANCELLED only follows an ack.
  return code !== grpc.status.OK && code !== grpc.status.DEADLINE_EXCEEDED && code !== grpc.status.CANCELLED;
}

function describeAnswer(answer: Answer): string {
  return 'ack' in answer ? `ack stored=${answer.ack.stored} error=${answer.ack.error}` : `status ${answer.status.code} ${answer.status.details}`;
}

/** One fuzz message for a stream that said hello as agentId. */
function fuzzMessage(random: () => number, agentId: string, n: number): { kind: string; payload: Buffer } {
  const int = (max: number) => Math.floor(random() * max);
  const bytes = (length: number) => Buffer.from(Array.from({ length }, () => int(256)));
  const valid: WindowUpload = simulatedWindow('fuzz', agentId, n + 1, FUZZ_T0);
  const windowBytes = (w: WindowUpload) => codecs.agentMessage.encode({ window: w });
  switch (int(7)) {
    case 0:
      return { kind: 'random', payload: bytes(int(2) === 0 ? int(64) : int(4096)) };
    case 1: {
      const whole = windowBytes(valid);
      return { kind: 'truncated', payload: whole.subarray(0, int(whole.length)) };
    }
    case 2:
      return { kind: 'random pprof', payload: windowBytes({ ...valid, pprofGz: bytes(int(2048)) }) };
    case 3:
      return { kind: 'gzipped garbage pprof', payload: windowBytes({ ...valid, pprofGz: gzipSync(bytes(int(2048))) }) };
    case 4:
      return { kind: 'ends before it starts', payload: windowBytes({ ...valid, endUnixNanos: valid.startUnixNanos - 1n }) };
    case 5:
      return { kind: 'another agent id', payload: windowBytes({ ...valid, agentId: `${agentId}-other` }) };
    default: {
      // A valid message with random bytes spliced in somewhere.
      const whole = Buffer.from(windowBytes(valid));
      const at = int(whole.length);
      return { kind: 'spliced', payload: Buffer.concat([whole.subarray(0, at), bytes(1 + int(16)), whole.subarray(at)]) };
    }
  }
}

async function expectSeedIntact(): Promise<void> {
  const { hosts } = await queries.listHosts();
  assert.deepEqual(
    hosts.map((h) => [h.host, h.windows]),
    [[seedHost, 5]],
    'only the seed host, with its 5 windows',
  );
}

test('every fuzzed upload gets an error, and the collector keeps serving', { timeout: 180_000 }, async (t) => {
  const random = prng(SEED);
  const started = Date.now();
  const kinds = new Map<string, number>();
  let sent = 0;
  while (sent < MAX_MESSAGES && Date.now() - started < MAX_MS) {
    const batch = Array.from({ length: BATCH }, (_, i) => sent + i);
    for (let i = 0; i < batch.length; i += CONCURRENCY) {
      const answers = await Promise.all(
        batch.slice(i, i + CONCURRENCY).map(async (n) => {
          const agentId = `fuzz/${n}`;
          const { kind, payload } = fuzzMessage(random, agentId, n);
          kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
          return { n, kind, payload, answer: await answerTo(agentId, payload) };
        }),
      );
      for (const { n, kind, payload, answer } of answers) {
        assert.ok(isError(answer), `message ${n} (${kind}, seed ${SEED}, ${payload.toString('hex').slice(0, 200)}) got ${describeAnswer(answer)}`);
      }
    }
    sent += batch.length;
    await expectSeedIntact();
  }
  for (let i = 0; i < OVERSIZED_MESSAGES; i++) {
    const answer = await answerTo(`fuzz/oversized-${i}`, Buffer.alloc(MAX_MESSAGE_BYTES + 1, i));
    assert.ok('status' in answer && answer.status.code === grpc.status.RESOURCE_EXHAUSTED, `oversized message got ${describeAnswer(answer)}`);
    await expectSeedIntact();
  }

  t.diagnostic(`${sent} fuzz messages (${[...kinds].map(([k, n]) => `${k}: ${n}`).join(', ')}) and ${OVERSIZED_MESSAGES} oversized, seed ${SEED}`);
  assert.ok(sent >= BATCH, `${sent} fuzz messages`);
  assert.ok(kinds.size >= 6, `fuzz kinds used: ${[...kinds.keys()].join(', ')}`);
  const profile = await queries.queryProfile({ host: seedHost, fromUnixNanos: T0 - 1n, toUnixNanos: T0 + 60_000_000_000n, pid: 0, comm: '' });
  assert.equal(profile.windows, 5);
  assert.equal(decodeProfile(profile.pprofGz).sample.reduce((n, s) => n + (s.value[0] ?? 0), 0), 5 * 153 + (1 + 2 + 3 + 4 + 5), 'the seed windows\' samples, all there');
  assert.equal(await scrapeMetric(httpAddress, 'hotloop_collector_windows_ingested_total{result="stored"}'), 5);
  for (const reason of ['bad-pprof', 'bad-times', 'wrong-identity']) {
    assert.ok(((await scrapeMetric(httpAddress, `hotloop_collector_uploads_rejected_total{reason="${reason}"}`)) ?? 0) > 0, `refusals counted as ${reason}`);
  }
  assert.equal(collector.exitCode, null, 'the collector is still running');
});
