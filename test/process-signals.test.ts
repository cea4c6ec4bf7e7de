// A real agent (the CLI, bpftrace capture, perf counters, bpftrace slices)
// uploads its windows to a recording AgentGateway while real workloads turn
// hot: hot processes carry no-progress signals that match what they do, and
// every window reports what it cost. Also the pieces it rests on: which
// processes are hot right now, and the agent's accounting of its children.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { HotProcessTracker } from '../agent/hot-process-tracker.js';
import { clockTicksPerSecond } from '../agent/libc.js';
import { SelfCostMeter } from '../agent/self-cost.js';
import { agentGatewayService, type AgentMessage, type CollectorMessage, type ProcessInfo, type WindowUpload } from '../proto/wire.js';
import { startHotloop, stopProcess, tempDir, waitFor } from './helpers/processes.js';
import { launchWorkload, WORKLOADS } from './helpers/workloads.js';
import { mountTracefs } from './helpers/tracing.js';

before(() => mountTracefs());

const WINDOW_SECONDS = 5;
/** Low, so the workloads count as hot even while other tests share the two cores. */
const HOT_THRESHOLD = 0.25;

/** A gRPC AgentGateway that keeps every window it is sent and acks it as stored. */
async function startRecordingGateway(): Promise<{ address: string; windows: WindowUpload[]; close(): void }> {
  const windows: WindowUpload[] = [];
  const server = new grpc.Server();
  server.addService(agentGatewayService, {
    connect: (call: grpc.ServerDuplexStream<AgentMessage, CollectorMessage>) => {
      call.on('data', (m: AgentMessage) => {
        if (!m.window) return;
        windows.push(m.window);
        call.write({ ack: { agentId: m.window.agentId, seq: m.window.seq, stored: true, duplicate: false, error: '', retryAfterMs: 0 } });
      });
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { address: `127.0.0.1:${port}`, windows, close: () => server.forceShutdown() };
}

const workload = (name: string) => WORKLOADS.find((w) => w.name === name)!;
const entryOf = (w: WindowUpload, pid: number): ProcessInfo | undefined => w.processes.find((p) => p.pid === pid);
/**
 * Both deep signals in one window. Not every window has both: a slice that
 * ends late in a window leaves its counter too little time, and the counter
 * never runs while a slice traces.
 */
const fullSignals = (p: ProcessInfo | undefined): boolean => Boolean(p?.signals?.syscallSlice && p.signals.syscallRateMeasured);

describe('a real agent window carries the signals of its hot processes', { timeout: 180_000 }, () => {
  let gateway: Awaited<ReturnType<typeof startRecordingGateway>>;
  let agent: ChildProcess;
  let agentLogs: () => string;
  const workloads = new Map<string, ChildProcess>();
  let firstWindowSeqWithWorkloads = 0;

  before(async () => {
    gateway = await startRecordingGateway();
    const started = startHotloop(['agent', '--spool', tempDir('signals-spool'), '--http', '127.0.0.1:0', '--collector', gateway.address, '--host', `signals-${process.pid}`, '--window', String(WINDOW_SECONDS), '--hot-threshold', String(HOT_THRESHOLD)]);
    agent = started.child;
    agentLogs = started.logs;
    await waitFor('the first window', () => (gateway.windows.length > 0 ? true : undefined), 60_000);
    firstWindowSeqWithWorkloads = gateway.windows.at(-1)!.seq + 1;
    for (const name of ['sched-yield-spin', 'devzero-copy']) workloads.set(name, await launchWorkload(workload(name)));
    await waitFor(
      'windows with a syscall slice and a counted syscall rate for both workloads',
      () => ([...workloads.values()].every((c) => gateway.windows.some((w) => fullSignals(entryOf(w, c.pid!)))) ? true : undefined),
      90_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; agent log tail:\n${agentLogs().slice(-4000)}`);
    });
  });

  after(async () => {
    await Promise.all([...workloads.values()].map((c) => stopProcess(c, 2000)));
    if (agent) assert.equal(await stopProcess(agent), 0, `agent exits 0 on SIGTERM; logs:\n${agentLogs().slice(-3000)}`);
    gateway?.close();
  });

  const windowsOf = (name: string): WindowUpload[] => gateway.windows.filter((w) => w.seq >= firstWindowSeqWithWorkloads && entryOf(w, workloads.get(name)!.pid!));

  it('a process gets its slice in its first or second hot window', () => {
    for (const name of workloads.keys()) {
      const pid = workloads.get(name)!.pid!;
      const hotSeqs = windowsOf(name).filter((w) => entryOf(w, pid)?.hot).map((w) => w.seq);
      const slicedSeqs = windowsOf(name).filter((w) => entryOf(w, pid)?.signals?.syscallSlice).map((w) => w.seq);
      assert.ok(hotSeqs.length > 0 && slicedSeqs.length > 0, `${name}: hot in ${hotSeqs}, sliced in ${slicedSeqs}`);
      assert.ok(slicedSeqs[0]! <= hotSeqs[0]! + 1, `${name}: first hot window ${hotSeqs[0]}, first slice in ${slicedSeqs[0]}`);
    }
  });

  it('sched-yield-spin: sched_yield dominates the slice, and the counter measured the rate', () => {
    const pid = workloads.get('sched-yield-spin')!.pid!;
    const p = windowsOf('sched-yield-spin').map((w) => entryOf(w, pid)!).find(fullSignals)!;
    const s = p.signals!;
    const slice = s.syscallSlice!;
    assert.ok(p.hot, 'signals are set for hot processes');
    assert.ok(slice.schedYield / slice.syscalls > 0.9, JSON.stringify(slice));
    // Not thousands a second for sure: sched_yield really yields while other tests' spinners wait for a core.
    assert.ok(s.syscallsPerSec > 100, `counter ${s.syscallsPerSec}/s`);
    assert.ok(s.readSyscallsPerSec < 100 && s.writeSyscallsPerSec < 100, `no read/write in a yield loop: ${JSON.stringify(s)}`);
  });

  it('devzero-copy: /proc/PID/io and the slice both see bytes moving', () => {
    const pid = workloads.get('devzero-copy')!.pid!;
    const s = windowsOf('devzero-copy').map((w) => entryOf(w, pid)!).find(fullSignals)!.signals!;
    const slice = s.syscallSlice!;
    assert.ok(s.readBytesPerSec > 1e6 && s.writeBytesPerSec > 1e6, JSON.stringify(s));
    assert.ok(Math.abs(s.readBytesPerSec / s.readSyscallsPerSec - 4096) < 64, `4 KiB per read: ${JSON.stringify(s)}`);
    assert.ok(slice.rwMovedCalls / slice.rwCalls > 0.99, JSON.stringify(slice));
    assert.ok(s.syscallsPerSec > 1000, `counter ${s.syscallsPerSec}/s`);
  });

  it('processes that are not hot carry no signals', () => {
    const cold = gateway.windows.flatMap((w) => w.processes).filter((p) => !p.hot);
    assert.ok(cold.length > 0, 'the agent reports processes that used a little CPU');
    for (const p of cold) assert.equal(p.signals ?? null, null, `${p.comm}/${p.pid}`);
  });

  it('every window reports its cost, and windows with a slice count its CPU under signals', () => {
    for (const w of gateway.windows) {
      assert.ok(w.cost, `window ${w.seq} has a cost`);
      assert.ok(w.cost.cpuSeconds > 0, `window ${w.seq}: ${JSON.stringify(w.cost)}`);
      assert.ok(w.cost.rssBytes > 10 * 1024 * 1024, `window ${w.seq}: ${JSON.stringify(w.cost)}`);
    }
    const sliced = gateway.windows.filter((w) => w.processes.some((p) => p.signals?.syscallSlice));
    for (const w of sliced) assert.ok(w.cost!.signalsCpuSeconds > 0.01, `window ${w.seq}: ${JSON.stringify(w.cost)}`);
    // Signals are part of the total; both read 10 ms clock ticks, at slightly different moments.
    for (const w of gateway.windows) assert.ok(w.cost!.signalsCpuSeconds <= w.cost!.cpuSeconds + 0.03, `window ${w.seq}: ${JSON.stringify(w.cost)}`);
    for (const w of gateway.windows) {
      console.log(`window ${w.seq}: cpu ${w.cost!.cpuSeconds.toFixed(3)} s (signals ${w.cost!.signalsCpuSeconds.toFixed(3)} s), rss ${(w.cost!.rssBytes / 2 ** 20).toFixed(0)} MiB, hot ${w.processes.filter((p) => p.hot).map((p) => `${p.comm}${p.signals?.syscallSlice ? '+slice' : ''}`)}`);
    }
  });
});

test('currently hot: a spinning process is, within a few scans; a sleeping one is not', async () => {
  const spin = await launchWorkload(workload('pause-flag-spin'));
  const idle = await launchWorkload(workload('idle-sleep'));
  try {
    const tracker = new HotProcessTracker({ clockTicksPerSecond: clockTicksPerSecond(), hotThreshold: HOT_THRESHOLD });
    tracker.scan();
    const seen: number[][] = [];
    for (let i = 0; i < 3; i++) {
      await sleep(1000);
      tracker.scan();
      seen.push(tracker.currentlyHot().map((p) => p.pid));
    }
    assert.ok(seen.at(-1)!.includes(spin.pid!), `spinner ${spin.pid} currently hot after 3 scans: ${JSON.stringify(seen)}`);
    assert.ok(seen.every((pids) => !pids.includes(idle.pid!)), `sleeper ${idle.pid} never currently hot: ${JSON.stringify(seen)}`);
    const cores = tracker.currentlyHot().map((p) => p.cpuCores);
    assert.deepEqual(cores, [...cores].sort((a, b) => b - a), 'hottest first');
  } finally {
    await stopProcess(spin, 2000);
    await stopProcess(idle, 2000);
  }
});

test('self cost counts a child that ran and exited within the window', async () => {
  const meter = new SelfCostMeter(clockTicksPerSecond());
  // Burns CPU for 300 ms of its own CPU time, then says how much it used.
  const child = spawn(process.execPath, ['-e', 'const t = process.cpuUsage(); while (process.cpuUsage(t).user < 300_000); const u = process.cpuUsage(); console.log((u.user + u.system) / 1e6)'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await once(child, 'close');
  const childCpu = Number(out.trim());
  const cost = meter.endWindow(0);
  assert.ok(childCpu >= 0.3, `the child used ${childCpu} s`);
  // 10 ms clock ticks on the reaped child's side.
  assert.ok(cost.cpuSeconds >= childCpu - 0.02, `window cost ${cost.cpuSeconds} s includes the child's ${childCpu} s`);
  assert.ok(cost.rssBytes >= process.memoryUsage.rss() / 2, `rss ${cost.rssBytes}`);
});
