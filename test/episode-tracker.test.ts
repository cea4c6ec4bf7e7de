import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { EpisodeTracker, MIN_BUSY_LOOP_WINDOWS, MIN_SILENT_NS, type TrackedWindow } from '../collector/episode-tracker.js';
import { CollectorMetrics } from '../collector/metrics.js';
import { RECURRENCE_LOOKBACK_NS } from '../collector/query-api.js';
import { SqliteStore } from '../collector/sqlite-store.js';
import type { EpisodeWithHistory } from '../collector/store.js';
import type { Episode, ProcessWindowVerdict, VerdictClass } from '../collector/verdict-types.js';
import { tempDir } from './helpers/processes.js';

// Beyond 2^53, so a lossy number conversion anywhere would show.
const T0 = 1_700_000_000_123_456_789n;
const SECOND = 1_000_000_000n;
const WINDOW = 10n * SECOND;

const dir = tempDir('episode-tracker');
let store: SqliteStore;
let tracker: EpisodeTracker;
const metrics = new CollectorMetrics();

const EAGAIN: VerdictClass = { verdict: 'busy-loop', kind: 'eagain-spin' };
const YIELD: VerdictClass = { verdict: 'busy-loop', kind: 'yield-spin' };
const COMPUTE: VerdictClass = { verdict: 'working', kind: 'compute' };
const IDLE: VerdictClass = { verdict: 'idle', kind: '' };

function windowAt(host: string, index: number): TrackedWindow {
  const start = T0 + BigInt(index) * WINDOW;
  return { host, startUnixNanos: start, endUnixNanos: start + WINDOW };
}

interface ProcessSpec {
  pid: number;
  class: VerdictClass;
  score?: number;
  comm?: string;
}

/** Feeds window `index` of `host` in which exactly these processes were classified. */
function feed(host: string, index: number, processes: ProcessSpec[], into = tracker): Promise<Episode[]> {
  const w = windowAt(host, index);
  const verdicts = processes.map(
    (p): ProcessWindowVerdict => ({
      host,
      pid: p.pid,
      comm: p.comm ?? 'api',
      exe: `/usr/bin/${p.comm ?? 'api'}`,
      windowStartNs: w.startUnixNanos,
      windowEndNs: w.endUnixNanos,
      verdict: { ...p.class, score: p.score ?? 0.9, evidence: `window ${index}: ${p.class.kind}` },
    }),
  );
  return into.recordWindow(w, verdicts);
}

/** What `hotloop verdicts` would list for the host over the whole test's time span. */
function listed(host: string, on = store): Promise<EpisodeWithHistory[]> {
  return on.episodesIn({ host, fromNs: T0, toNs: T0 + 1000n * WINDOW, minBusyLoopWindows: MIN_BUSY_LOOP_WINDOWS, recurrenceLookbackNs: RECURRENCE_LOOKBACK_NS });
}

const summary = (e: Episode): [number, string, string, bigint, bigint, number, boolean] => [e.pid, e.verdict, e.kind, e.startNs, e.endNs, e.windows, e.open];
const at = (index: number): bigint => T0 + BigInt(index) * WINDOW;

async function busyLoopSeries(): Promise<string[]> {
  return (await metrics.exposition()).split('\n').filter((l) => l.startsWith('hotloop_busy_loop{'));
}

before(() => {
  store = new SqliteStore(path.join(dir, 'hotloop.sqlite'));
  tracker = new EpisodeTracker({ store, onChange: (changed) => metrics.observeEpisodes(changed) });
});

after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a one-window busy loop is a blip: stored, but neither listed nor in metrics', async () => {
  const opened = await feed('blip', 0, [{ pid: 10, class: EAGAIN }]);
  assert.deepEqual(opened.map(summary), [[10, 'busy-loop', 'eagain-spin', at(0), at(1), 1, true]]);
  assert.deepEqual(await listed('blip'), []);
  assert.deepEqual((await busyLoopSeries()).filter((l) => l.includes('host="blip"')), []);

  const closed = await feed('blip', 1, []);
  assert.deepEqual(closed.map(summary), [[10, 'busy-loop', 'eagain-spin', at(0), at(1), 1, false]]);
  assert.deepEqual(await listed('blip'), []);
});

test('two consecutive windows make a reported episode: max score, latest evidence, gauge set', async () => {
  await feed('steady', 0, [{ pid: 20, class: EAGAIN, score: 0.95 }]);
  await feed('steady', 1, [{ pid: 20, class: EAGAIN, score: 0.7 }]);
  const [episode, ...rest] = await listed('steady');
  assert.equal(rest.length, 0);
  assert.deepEqual(episode && summary(episode), [20, 'busy-loop', 'eagain-spin', at(0), at(2), 2, true]);
  assert.equal(episode?.score, 0.95);
  assert.equal(episode?.evidence, 'window 1: eagain-spin');
  assert.deepEqual(await busyLoopSeries(), ['hotloop_busy_loop{host="steady",pid="20",comm="api",kind="eagain-spin"} 1']);
});

test('a change of verdict or kind ends the episode and starts another', async () => {
  await feed('flip', 0, [{ pid: 30, class: EAGAIN }]);
  await feed('flip', 1, [{ pid: 30, class: EAGAIN }]);
  await feed('flip', 2, [{ pid: 30, class: YIELD }]);
  await feed('flip', 3, [{ pid: 30, class: YIELD }]);
  await feed('flip', 4, [{ pid: 30, class: COMPUTE }]);
  assert.deepEqual((await listed('flip')).map(summary), [
    [30, 'busy-loop', 'eagain-spin', at(0), at(2), 2, false],
    [30, 'busy-loop', 'yield-spin', at(2), at(4), 2, false],
    [30, 'working', 'compute', at(4), at(5), 1, true],
  ]);
  assert.deepEqual((await busyLoopSeries()).filter((l) => l.includes('host="flip"')), []);
});

test('a process that leaves the host\'s windows ends its episode, and the gauge series goes', async () => {
  await feed('exit', 0, [{ pid: 40, class: EAGAIN }, { pid: 41, class: COMPUTE }]);
  await feed('exit', 1, [{ pid: 40, class: EAGAIN }, { pid: 41, class: COMPUTE }]);
  assert.equal((await busyLoopSeries()).filter((l) => l.includes('host="exit"')).length, 1);
  // pid 40 is not listed at all; pid 41 stopped being hot.
  await feed('exit', 2, [{ pid: 41, class: IDLE }]);
  assert.deepEqual((await listed('exit')).map(summary), [
    [40, 'busy-loop', 'eagain-spin', at(0), at(2), 2, false],
    [41, 'working', 'compute', at(0), at(2), 2, false],
  ]);
  assert.deepEqual((await busyLoopSeries()).filter((l) => l.includes('host="exit"')), []);
  assert.deepEqual(await store.openEpisodes('exit'), [], '`idle` opens no episode');
});

test('missing windows break an episode: the next one after a gap starts afresh', async () => {
  await feed('gap', 0, [{ pid: 50, class: EAGAIN }]);
  await feed('gap', 1, [{ pid: 50, class: EAGAIN }]);
  await feed('gap', 3, [{ pid: 50, class: EAGAIN }]);
  assert.deepEqual((await store.openEpisodes('gap')).map(summary), [[50, 'busy-loop', 'eagain-spin', at(3), at(4), 1, true]]);
  assert.deepEqual((await listed('gap')).map(summary), [[50, 'busy-loop', 'eagain-spin', at(0), at(2), 2, false]]);
});

test('a window no later than an open episode\'s end leaves that episode alone', async () => {
  await feed('replay', 0, [{ pid: 60, class: EAGAIN }]);
  await feed('replay', 1, [{ pid: 60, class: EAGAIN }]);
  assert.deepEqual(await feed('replay', 1, []), []);
  assert.deepEqual(await feed('replay', 0, [{ pid: 60, class: COMPUTE }]), []);
  assert.deepEqual((await listed('replay')).map(summary), [[60, 'busy-loop', 'eagain-spin', at(0), at(2), 2, true]]);
});

test('the same exe+comm under a new pid is a recurrence; blips and other services are not', async () => {
  // pid 70 busy-loops, is restarted as 71 (busy-loops again), a 1-window blip as 72, then 73.
  const script: ProcessSpec[][] = [
    [{ pid: 70, class: EAGAIN }, { pid: 90, class: EAGAIN, comm: 'worker' }],
    [{ pid: 70, class: EAGAIN }, { pid: 90, class: EAGAIN, comm: 'worker' }],
    [{ pid: 71, class: EAGAIN }],
    [{ pid: 71, class: EAGAIN }],
    [{ pid: 72, class: EAGAIN }],
    [{ pid: 73, class: EAGAIN }],
    [{ pid: 73, class: EAGAIN }],
  ];
  for (const [i, processes] of script.entries()) await feed('bounce', i, processes);
  const episodes = await listed('bounce');
  assert.deepEqual(
    episodes.map((e) => [e.pid, e.comm, e.recurrences, e.historySinceNs, e.historyPids]),
    [
      [70, 'api', 0, at(0), 1],
      [90, 'worker', 0, at(0), 1],
      [71, 'api', 1, at(0), 2],
      [73, 'api', 2, at(0), 3],
    ],
  );
  // Earlier episodes beyond the look-back do not count.
  const short = await store.episodesIn({ host: 'bounce', fromNs: at(5), toNs: at(7), minBusyLoopWindows: MIN_BUSY_LOOP_WINDOWS, recurrenceLookbackNs: 3n * WINDOW });
  assert.deepEqual(short.map((e) => [e.pid, e.recurrences, e.historySinceNs]), [[73, 1, at(2)]]);
});

test('episodes survive a store reopen, and a new tracker carries the open one on', async () => {
  const file = path.join(dir, 'reopened.sqlite');
  const first = new SqliteStore(file);
  await feed('restart', 0, [{ pid: 80, class: EAGAIN }], new EpisodeTracker({ store: first }));
  await feed('restart', 1, [{ pid: 80, class: EAGAIN }], new EpisodeTracker({ store: first }));
  await first.close();

  const second = new SqliteStore(file);
  try {
    assert.deepEqual((await second.openEpisodes()).map(summary), [[80, 'busy-loop', 'eagain-spin', at(0), at(2), 2, true]]);
    await feed('restart', 2, [{ pid: 80, class: EAGAIN }], new EpisodeTracker({ store: second }));
    assert.deepEqual((await listed('restart', second)).map(summary), [[80, 'busy-loop', 'eagain-spin', at(0), at(3), 3, true]]);
  } finally {
    await second.close();
  }
});

test('windows of one host fed at once are folded one after another', async () => {
  await Promise.all([0, 1, 2].map((i) => feed('burst', i, [{ pid: 95, class: EAGAIN }])));
  assert.deepEqual((await listed('burst')).map(summary), [[95, 'busy-loop', 'eagain-spin', at(0), at(3), 3, true]]);
});

test('a disconnected host silent for a few windows has its episodes closed, gauge gone; a connected or recent one keeps them', async () => {
  await feed('silent', 0, [{ pid: 90, class: EAGAIN }, { pid: 91, class: COMPUTE }]);
  await feed('silent', 1, [{ pid: 90, class: EAGAIN }, { pid: 91, class: COMPUTE }]);
  assert.equal((await busyLoopSeries()).filter((l) => l.includes('host="silent"')).length, 1);
  const onlySilentIsGone = (host: string) => host !== 'silent';
  const lastEnd = at(2);

  assert.deepEqual(await tracker.expireSilentHosts(lastEnd + MIN_SILENT_NS - SECOND, onlySilentIsGone), [], 'not silent for long enough yet');
  assert.deepEqual(await tracker.expireSilentHosts(lastEnd + 10n * MIN_SILENT_NS, () => true), [], 'an agent still connected keeps its episodes');
  assert.equal((await store.openEpisodes('silent')).length, 2);

  const closed = await tracker.expireSilentHosts(lastEnd + MIN_SILENT_NS, onlySilentIsGone);
  assert.deepEqual(closed.map(summary).sort(), [
    [90, 'busy-loop', 'eagain-spin', at(0), lastEnd, 2, false],
    [91, 'working', 'compute', at(0), lastEnd, 2, false],
  ]);
  assert.ok(closed.every((e) => e.evidence.endsWith(`(closed: no window from silent since ${new Date(Number(lastEnd / 1_000_000n)).toISOString()})`)), closed[0]?.evidence);
  assert.deepEqual(await store.openEpisodes('silent'), []);
  assert.deepEqual((await busyLoopSeries()).filter((l) => l.includes('host="silent"')), [], 'the alert resolves');
  assert.ok((await store.openEpisodes()).some((e) => e.host !== 'silent'), 'other hosts\' open episodes are untouched');

  // Its spooled windows arrive later: they start a new episode.
  await feed('silent', 2, [{ pid: 90, class: EAGAIN }]);
  assert.deepEqual((await store.openEpisodes('silent')).map(summary), [[90, 'busy-loop', 'eagain-spin', at(2), at(3), 1, true]]);
});

test('long windows need proportionally longer silence', async () => {
  // 10-minute windows: three of them, not the 2-minute floor.
  const long = (i: number): TrackedWindow => ({ host: 'slow', startUnixNanos: T0 + BigInt(i) * 600n * SECOND, endUnixNanos: T0 + BigInt(i + 1) * 600n * SECOND });
  const verdict = (i: number): ProcessWindowVerdict[] => [
    { host: 'slow', pid: 95, comm: 'api', exe: '/usr/bin/api', windowStartNs: long(i).startUnixNanos, windowEndNs: long(i).endUnixNanos, verdict: { ...EAGAIN, score: 0.9, evidence: 'spin' } },
  ];
  await tracker.recordWindow(long(0), verdict(0));
  await tracker.recordWindow(long(1), verdict(1));
  const end = long(1).endUnixNanos;
  const gone = (host: string) => host !== 'slow';
  assert.deepEqual(await tracker.expireSilentHosts(end + 3n * 600n * SECOND - SECOND, gone), []);
  assert.equal((await tracker.expireSilentHosts(end + 3n * 600n * SECOND, gone)).length, 1);
});
