// The capture broker's bookkeeping: which answers settle which waiting call.
// The agent here only records what is sent to it; the real stream is covered
// by on-demand-capture.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import type { ConnectedAgent } from '../collector/agent-gateway.js';
import { CaptureBroker, type CaptureOutcome, type CaptureResult } from '../collector/capture-broker.js';
import type { StatusError } from '../collector/status-error.js';
import type { CaptureRequest, CollectorMessage } from '../proto/wire.js';

const silent = pino({ level: 'silent' });

function recordingAgent(host: string, open = true): ConnectedAgent & { sent: CaptureRequest[] } {
  const sent: CaptureRequest[] = [];
  return {
    host,
    agentId: `${host}/agent`,
    version: 'test',
    peer: 'test',
    sent,
    send(message: CollectorMessage): boolean {
      if (message.capture) sent.push(message.capture);
      return open;
    },
  };
}

const result = (requestId: string): CaptureResult => ({ requestId, pprofGz: Buffer.from('x'), samples: 7, startUnixNanos: 1n, endUnixNanos: 2n });

test('the stored capture of the host it was sent to answers the call; another host\'s report does not', async () => {
  const web = recordingAgent('web-1');
  const outcomes: CaptureOutcome[] = [];
  const broker = new CaptureBroker({ agentFor: (h) => (h === 'web-1' ? web : undefined), log: silent, onOutcome: (o) => outcomes.push(o) });
  const call = broker.request({ host: 'web-1', durationSeconds: 5, frequencyHz: 99, pid: 42 });
  const [sent] = web.sent;
  assert.ok(sent);
  assert.deepEqual({ ...sent, requestId: '' }, { requestId: '', program: 1, durationSeconds: 5, frequencyHz: 99, pid: 42 });
  broker.captureFailed('db-1', sent.requestId, 'not yours');
  broker.captureStored('db-1', result(sent.requestId));
  assert.equal(broker.waiting, 1, 'reports from another host are ignored');
  broker.captureStored('web-1', result(sent.requestId));
  assert.deepEqual(await call, result(sent.requestId));
  assert.equal(broker.waiting, 0);
  broker.captureStored('web-1', result(sent.requestId));
  assert.deepEqual(outcomes, ['delivered'], 'counted once, however often the upload is reported');
});

test('an agent\'s failure report fails the call with its reason', async () => {
  const web = recordingAgent('web-1');
  const broker = new CaptureBroker({ agentFor: () => web, log: silent });
  const call = broker.request({ host: 'web-1', durationSeconds: 5, frequencyHz: 99, pid: 0 });
  broker.captureFailed('web-1', web.sent[0]?.requestId ?? '', 'pid 42 is not running on this host');
  await assert.rejects(call, (err: StatusError) => {
    assert.equal(err.code, grpc.status.FAILED_PRECONDITION);
    assert.equal(err.message, 'the agent of host web-1 could not run the capture: pid 42 is not running on this host');
    return true;
  });
});

test('no connected agent, a closed stream, silence past the deadline and shutdown each fail the call with a reason', async () => {
  const outcomes: CaptureOutcome[] = [];
  const onOutcome = (o: CaptureOutcome) => outcomes.push(o);
  const none = new CaptureBroker({ agentFor: () => undefined, log: silent, onOutcome });
  await assert.rejects(none.request({ host: 'gone', durationSeconds: 1, frequencyHz: 99, pid: 0 }), /no agent of host gone is connected/);

  const closed = new CaptureBroker({ agentFor: () => recordingAgent('web-1', false), log: silent, onOutcome });
  await assert.rejects(closed.request({ host: 'web-1', durationSeconds: 1, frequencyHz: 99, pid: 0 }), /stream of host web-1's agent closed/);
  assert.equal(closed.waiting, 0);

  const silentAgent = recordingAgent('web-1');
  const slow = new CaptureBroker({ agentFor: () => silentAgent, log: silent, graceMs: 10, onOutcome });
  await assert.rejects(slow.request({ host: 'web-1', durationSeconds: 1, frequencyHz: 99, pid: 0 }), (err: StatusError) => {
    assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
    assert.match(err.message, new RegExp(`capture ${silentAgent.sent[0]?.requestId} of host web-1 did not arrive within 1 s; .*hotloop query --host web-1 --capture`));
    return true;
  });

  const stopping = new CaptureBroker({ agentFor: () => recordingAgent('web-1'), log: silent, onOutcome });
  const waiting = stopping.request({ host: 'web-1', durationSeconds: 300, frequencyHz: 99, pid: 0 });
  stopping.close();
  await assert.rejects(waiting, (err: StatusError) => err.code === grpc.status.UNAVAILABLE && /shutting down/.test(err.message));
  assert.deepEqual(outcomes, ['no-agent', 'no-agent', 'timed-out', 'shut-down']);
});
