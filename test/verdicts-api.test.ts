// Busy-loop verdicts end to end on the collector side: windows go up a real
// AgentGateway stream, the real classifier and episode tracker fold them, and
// ListEpisodes/Fleet (gRPC), /metrics (HTTP) and the `hotloop` CLI report them.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { startCollector, type RunningCollector } from '../collector/collector.js';
import { encodeProfileGz } from '../proto/pprof.js';
import {
  newAgentGatewayClient,
  newQueryClient,
  type AgentGatewayClient,
  type AgentMessage,
  type CollectorMessage,
  type FleetResponse,
  type ListEpisodesResponse,
  type ProcessEpisode,
  type ProcessInfo,
  type UploadAck,
  type WindowUpload,
} from '../proto/wire.js';
import { cpuProfile } from './helpers/cpu-profiles.js';
import { runHotloop, tempDir, waitFor } from './helpers/processes.js';

const T0 = 1_700_000_000_000_000_000n;
const SECOND = 1_000_000_000n;
const WINDOW = 10n * SECOND;
const RANGE = { fromUnixNanos: T0, toUnixNanos: T0 + 1000n * SECOND };
const CLI_RANGE = ['--from', String(T0 / SECOND), '--to', String((T0 + 1000n * SECOND) / SECOND)];

const dataDir = tempDir('verdicts-api');
/** The collector's error log lines, to see that a failed classification is reported. */
const errorLog: string[] = [];
const log = pino(
  { level: 'error' },
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      errorLog.push(chunk.toString());
      done();
    },
  }),
);
let collector: RunningCollector;
const sessions: AgentSession[] = [];

/** One agent's Connect stream, uploading one window at a time. */
class AgentSession {
  private readonly client: AgentGatewayClient;
  private readonly call: grpc.ClientDuplexStream<AgentMessage, CollectorMessage>;
  private readonly waiting: ((ack: UploadAck) => void)[] = [];
  private seq = 0;

  constructor(
    address: string,
    readonly host: string,
    private readonly agentId = `agent-${host}`,
  ) {
    this.client = newAgentGatewayClient(address);
    this.call = this.client.connect();
    this.call.on('data', (m: CollectorMessage) => m.ack && this.waiting.shift()?.(m.ack));
    this.call.on('error', () => {}); // a test that needs the stream fails on its missing ack
    this.call.write({ hello: { host, agentId: this.agentId, version: 'test' } });
    sessions.push(this);
  }

  /** Uploads window `index` of the host listing `processes`; resolves with its ack. */
  upload(index: number, processes: ProcessInfo[]): Promise<UploadAck> {
    const start = T0 + BigInt(index) * WINDOW;
    const samples = processes.filter((p) => p.hot).map((p) => ({ stack: ['__recv', 'poll_socket', 'main'], pid: p.pid, comm: p.comm, count: 190 }));
    const window: WindowUpload = {
      host: this.host,
      agentId: this.agentId,
      seq: this.seq++,
      startUnixNanos: start,
      endUnixNanos: start + WINDOW,
      pprofGz: encodeProfileGz(cpuProfile(samples, start, WINDOW)),
      processes,
    };
    const ack = new Promise<UploadAck>((resolve) => this.waiting.push(resolve));
    this.call.write({ window });
    return ack;
  }

  close(): void {
    this.call.end();
    this.client.close();
  }
}

/** A process spinning on a non-blocking recv: 200k syscalls/s, 99% of them EAGAIN, one core, no bytes moved. */
function eagainSpinner(pid: number): ProcessInfo {
  return {
    ...calm(pid, 'recv-spin'),
    hot: true,
    cpuCores: 1.0,
    signals: {
      spinHintShare: 0,
      voluntarySwitchesPerSec: 0,
      involuntarySwitchesPerSec: 4,
      timeslicesPerSec: 4,
      runQueueWaitShare: 0,
      readSyscallsPerSec: 200_000,
      writeSyscallsPerSec: 0,
      readBytesPerSec: 0,
      writeBytesPerSec: 0,
      syscallRateMeasured: true,
      syscallsPerSec: 200_000,
      syscallSlice: {
        seconds: 1,
        syscalls: 200_000,
        eagain: 198_000,
        waitCalls: 0,
        waitReturnedZero: 0,
        waitImmediate: 0,
        waitZeroTimeout: 0,
        schedYield: 0,
        futexCalls: 0,
        futexEagain: 0,
        rwCalls: 200_000,
        rwMovedCalls: 0,
        rwBytes: 0,
      },
    },
  };
}

/** A listed process under the hot threshold. */
function calm(pid: number, comm: string): ProcessInfo {
  return { pid, comm, exe: `/usr/bin/${comm}`, cmdline: comm, cgroup: '/', containerId: '', hot: false, cpuCores: 0.05 };
}

function unary<Req, Res>(call: (client: ReturnType<typeof newQueryClient>, req: Req, cb: grpc.requestCallback<Res>) => void, req: Req, address = collector.grpcAddress): Promise<Res> {
  const client = newQueryClient(address);
  return new Promise<Res>((resolve, reject) =>
    call(client, req, (err, res) => {
      client.close();
      if (err || !res) reject(err ?? new Error('no response'));
      else resolve(res);
    }),
  );
}

function listEpisodes(host: string, address?: string): Promise<ProcessEpisode[]> {
  return unary<{ host: string; fromUnixNanos: bigint; toUnixNanos: bigint }, ListEpisodesResponse>((c, r, cb) => c.listEpisodes(r, cb), { host, ...RANGE }, address).then((r) => r.episodes);
}

function fleet(): Promise<FleetResponse> {
  return unary<typeof RANGE, FleetResponse>((c, r, cb) => c.fleet(r, cb), RANGE);
}

/** The hotloop_busy_loop series lines of a scrape. */
async function busyLoopSeries(address = collector.httpAddress): Promise<string[]> {
  const res = await fetch(`http://${address}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return (await res.text()).split('\n').filter((l) => l.startsWith('hotloop_busy_loop{'));
}

/** Episode rows of a pid as committed, read through a separate connection (includes unreported blips). */
function storedEpisodes(pid: number): { windows: bigint; open: bigint; start_ns: bigint }[] {
  const db = new Database(path.join(dataDir, 'hotloop.sqlite'), { readonly: true });
  db.defaultSafeIntegers(true);
  try {
    return db.prepare('SELECT windows, open, start_ns FROM episodes WHERE pid = ? ORDER BY id').all(pid) as { windows: bigint; open: bigint; start_ns: bigint }[];
  } finally {
    db.close();
  }
}

const at = (index: number): bigint => T0 + BigInt(index) * WINDOW;
const SPIN_A_SERIES = (pid: number): string => `hotloop_busy_loop{host="spin-a",pid="${pid}",comm="recv-spin",kind="eagain-spin"} 1`;

let spinA: AgentSession;

before(async () => {
  collector = await startCollector({ dataDir, grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', log });
  spinA = new AgentSession(collector.grpcAddress, 'spin-a');
});

after(async () => {
  for (const s of sessions) s.close();
  await collector.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test('an EAGAIN spin is a blip after one window, then a listed busy loop with its evidence and gauge', { timeout: 60_000 }, async () => {
  assert.equal((await spinA.upload(0, [eagainSpinner(500), calm(600, 'sshd')])).stored, true);
  const blip = await waitFor('the one-window episode of pid 500', () => storedEpisodes(500)[0]);
  assert.deepEqual([blip.windows, blip.open], [1n, 1n]);
  assert.deepEqual(await listEpisodes('spin-a'), []);
  assert.deepEqual(await busyLoopSeries(), []);

  assert.equal((await spinA.upload(1, [eagainSpinner(500), calm(600, 'sshd')])).stored, true);
  const [episode, ...others] = await waitFor('a two-window episode', async () => {
    const episodes = await listEpisodes('spin-a');
    return episodes.length > 0 ? episodes : undefined;
  });
  assert.deepEqual(others, []);
  assert.deepEqual(
    { ...episode, evidence: '' },
    {
      host: 'spin-a',
      pid: 500,
      comm: 'recv-spin',
      exe: '/usr/bin/recv-spin',
      verdict: 'busy-loop',
      kind: 'eagain-spin',
      score: 0.99,
      startUnixNanos: at(0),
      endUnixNanos: at(2),
      windows: 2,
      evidence: '',
      open: true,
      recurrences: 0,
      historySinceUnixNanos: at(0),
      historyPids: 1,
    },
  );
  assert.match(episode?.evidence ?? '', /99% returned EAGAIN/);
  assert.deepEqual(await busyLoopSeries(), [SPIN_A_SERIES(500)]);
});

test('the process leaving the windows ends the episode and removes its gauge series', { timeout: 60_000 }, async () => {
  assert.equal((await spinA.upload(2, [calm(600, 'sshd')])).stored, true);
  const [ended] = await waitFor('the episode to end', async () => {
    const episodes = await listEpisodes('spin-a');
    return episodes[0]?.open === false ? episodes : undefined;
  });
  assert.deepEqual([ended?.pid, ended?.endUnixNanos, ended?.windows], [500, at(2), 2]);
  assert.deepEqual(await busyLoopSeries(), []);
});

test('restarted under a new pid it busy-loops again: a recurrence, and one of two hosts running it in the fleet view', { timeout: 60_000 }, async () => {
  await spinA.upload(3, [eagainSpinner(501)]);
  await spinA.upload(4, [eagainSpinner(501)]);
  const again = await waitFor('the second busy loop', async () => (await listEpisodes('spin-a')).find((e) => e.pid === 501 && e.windows === 2));
  assert.deepEqual([again.recurrences, again.historySinceUnixNanos, again.historyPids, again.open], [1, at(0), 2, true]);

  // spin-b runs the same service without it getting hot.
  const spinB = new AgentSession(collector.grpcAddress, 'spin-b');
  assert.equal((await spinB.upload(0, [calm(700, 'recv-spin')])).stored, true);
  assert.deepEqual((await fleet()).services, [{ exe: '/usr/bin/recv-spin', comm: 'recv-spin', busyLoopingHosts: ['spin-a'], hostsRunning: 2 }]);
});

test('`hotloop verdicts` and `hotloop fleet` print them, as JSON and for people', { timeout: 60_000 }, async () => {
  const json = await runHotloop(['verdicts', '--collector', collector.grpcAddress, ...CLI_RANGE, '--json']);
  assert.equal(json.code, 0, json.stderr);
  const episodes = JSON.parse(json.stdout) as Record<string, unknown>[];
  assert.deepEqual(
    episodes.map((e) => ({ ...e, evidence: typeof e.evidence })),
    [
      // Ongoing busy loops first.
      {
        host: 'spin-a',
        pid: 501,
        comm: 'recv-spin',
        exe: '/usr/bin/recv-spin',
        verdict: 'busy-loop',
        kind: 'eagain-spin',
        score: 0.99,
        start: new Date(Number(at(3) / 1_000_000n)).toISOString(),
        end: new Date(Number(at(5) / 1_000_000n)).toISOString(),
        windows: 2,
        evidence: 'string',
        open: true,
        recurrences: 1,
      },
      {
        host: 'spin-a',
        pid: 500,
        comm: 'recv-spin',
        exe: '/usr/bin/recv-spin',
        verdict: 'busy-loop',
        kind: 'eagain-spin',
        score: 0.99,
        start: '2023-11-14T22:13:20.000Z',
        end: '2023-11-14T22:13:40.000Z',
        windows: 2,
        evidence: 'string',
        open: false,
        recurrences: 0,
      },
    ],
  );

  const text = await runHotloop(['verdicts', '--collector', collector.grpcAddress, '--host', 'spin-a', ...CLI_RANGE]);
  assert.equal(text.code, 0, text.stderr);
  const lines = text.stdout.split('\n');
  assert.match(lines[0] ?? '', /^BUSY LOOPS on spin-a between .*: 1 ongoing, 1 ended$/);
  assert.match(lines[2] ?? '', /^spin-a\s+501\s+recv-spin\s+eagain-spin\s+0\.99\s+2023-11-14T22:13:50\.000Z\s+2023-11-14T22:14:10\.000Z\s+2\s+ongoing$/);
  assert.match(lines[4] ?? '', /^ {4}evidence: .*99% returned EAGAIN/);
  assert.equal(lines[5], '    busy-looped 2 times in 50 s; restarted each time');
  // What to run next, with the collector that was asked.
  assert.equal(lines[6], `    profile: hotloop query --collector ${collector.grpcAddress} --host spin-a --pid 501 --from 2023-11-14T22:13:50.000Z --to 2023-11-14T22:14:10.000Z`);
  assert.equal(lines[7], `    now:     hotloop capture --collector ${collector.grpcAddress} --host spin-a --pid 501 --duration 30 --frequency 199`);
  assert.match(lines[8] ?? '', /^spin-a\s+500\s+recv-spin\s+eagain-spin\s+.*\s+ended$/);
  assert.ok(!lines.slice(9).some((l) => l.includes('hotloop capture')), 'an ended busy loop has no capture hint');

  const unknown = await runHotloop(['verdicts', '--collector', collector.grpcAddress, '--host', 'nope', ...CLI_RANGE]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /unknown host nope \(known: spin-a, spin-b\)/);

  const fleetJson = await runHotloop(['fleet', '--collector', collector.grpcAddress, ...CLI_RANGE, '--json']);
  assert.equal(fleetJson.code, 0, fleetJson.stderr);
  assert.deepEqual(JSON.parse(fleetJson.stdout), [{ exe: '/usr/bin/recv-spin', comm: 'recv-spin', hostsBusyLooping: 1, hostsRunning: 2, busyLoopingHosts: ['spin-a'] }]);
  const fleetText = await runHotloop(['fleet', '--collector', collector.grpcAddress, ...CLI_RANGE]);
  assert.match(fleetText.stdout, /\nrecv-spin\s+\/usr\/bin\/recv-spin\s+1 of 2\s+spin-a\n/);
});

test('a failing classification is logged; the window stays stored and acked, and the next one is classified', { timeout: 60_000 }, async () => {
  // A real fault: the collector's next episode insert is aborted by SQLite.
  const db = new Database(path.join(dataDir, 'hotloop.sqlite'));
  db.exec("CREATE TRIGGER refuse_episodes BEFORE INSERT ON episodes BEGIN SELECT RAISE(ABORT, 'injected fault'); END");
  const fault = new AgentSession(collector.grpcAddress, 'fault');
  try {
    assert.deepEqual(await fault.upload(0, [eagainSpinner(800)]), { agentId: 'agent-fault', seq: 0, stored: true, duplicate: false, error: '', retryAfterMs: 0 });
    // Acked only once window 0's classification is done: windows of a stream are handled in turn.
    await fault.upload(1, []);
  } finally {
    db.exec('DROP TRIGGER refuse_episodes');
    db.close();
  }
  assert.ok(errorLog.some((l) => l.includes('classifying the window failed') && l.includes('injected fault')), errorLog.join(''));
  assert.deepEqual(storedEpisodes(800), []);

  assert.equal((await fault.upload(2, [eagainSpinner(800)])).stored, true);
  const episode = await waitFor('pid 800 classified after the fault', () => storedEpisodes(800)[0]);
  assert.equal(episode.start_ns, at(2));
  assert.deepEqual(await listEpisodes('fault'), [], 'one window is still a blip');
});

test('a restarted collector keeps its episodes and its busy-loop gauge until the episode ends', { timeout: 60_000 }, async () => {
  const before = await listEpisodes('spin-a');
  for (const s of sessions.splice(0)) s.close();
  await collector.close();
  collector = await startCollector({ dataDir, grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', log });

  assert.deepEqual(await listEpisodes('spin-a'), before);
  assert.deepEqual(await busyLoopSeries(), [SPIN_A_SERIES(501)]);

  const resumed = new AgentSession(collector.grpcAddress, 'spin-a', 'agent-spin-a-2');
  assert.equal((await resumed.upload(5, [calm(600, 'sshd')])).stored, true);
  await waitFor('pid 501 to end', async () => ((await listEpisodes('spin-a')).find((e) => e.pid === 501)?.open === false ? true : undefined));
  assert.deepEqual(await busyLoopSeries(), []);
});

test('once its agent has disconnected, a silent host\'s busy loop is closed and its gauge removed', { timeout: 60_000 }, async () => {
  const dir = tempDir('verdicts-silent');
  const checked = await startCollector({ dataDir: dir, grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', log, silentHostCheck: { firstAfterMs: 0, everyMs: 100 } });
  try {
    const agent = new AgentSession(checked.grpcAddress, 'silent-1');
    await agent.upload(0, [eagainSpinner(700)]);
    await agent.upload(1, [eagainSpinner(700)]);
    // Its windows are years old, so only the open stream keeps the episode open.
    await waitFor('the reported busy loop', async () => ((await busyLoopSeries(checked.httpAddress)).length === 1 ? true : undefined));
    assert.equal((await listEpisodes('silent-1', checked.grpcAddress))[0]?.open, true);

    agent.close();
    const [closed] = await waitFor('the episode of the silent host closed', async () => {
      const episodes = await listEpisodes('silent-1', checked.grpcAddress);
      return episodes[0]?.open === false ? episodes : undefined;
    });
    assert.deepEqual([closed?.pid, closed?.endUnixNanos, closed?.windows], [700, at(2), 2], 'it keeps the end of its last window');
    assert.match(closed?.evidence ?? '', /99% returned EAGAIN.*\(closed: no window from silent-1 since 2023-/);
    assert.deepEqual(await busyLoopSeries(checked.httpAddress), []);
  } finally {
    await checked.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
