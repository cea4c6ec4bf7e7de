// Retention on a real SQLite store: old windows and closed episodes go, in
// batches that let ingest in between, and the hosts summary stays right. Then
// the --retention flag of a real collector process.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { Retention } from '../collector/retention.js';
import { SqliteStore } from '../collector/sqlite-store.js';
import type { RetentionBatch } from '../collector/store.js';
import type { Episode } from '../collector/verdict-types.js';
import { encodeProfileGz } from '../proto/pprof.js';
import type { WindowUpload } from '../proto/wire.js';
import { cpuProfile } from './helpers/cpu-profiles.js';
import { logLines } from './helpers/durability.js';
import { freePort, runHotloop, startHotloop, stopProcess, tempDir, waitFor } from './helpers/processes.js';

const SECOND = 1_000_000_000n;
const DAY = 86_400n * SECOND;
const NOW = 1_800_000_000n * SECOND;
const silent = pino({ level: 'silent' });

function windowAt(host: string, seq: number, startNs: bigint): WindowUpload {
  return {
    host,
    agentId: `${host}/agent`,
    seq,
    startUnixNanos: startNs,
    endUnixNanos: startNs + 10n * SECOND,
    pprofGz: encodeProfileGz(cpuProfile([{ stack: ['spin', 'main'], pid: 7, comm: 'api', count: 3 }], startNs, 10n * SECOND)),
    processes: [{ pid: 7, comm: 'api', exe: '/usr/bin/api', cmdline: 'api', cgroup: '/', containerId: '', hot: true, cpuCores: 1 }],
  };
}

function episode(host: string, endNs: bigint, open: boolean): Omit<Episode, 'id'> {
  return { host, pid: 7, comm: 'api', exe: '/usr/bin/api', verdict: 'busy-loop', kind: 'user-spin', score: 0.9, startNs: endNs - 60n * SECOND, endNs, windows: 6, evidence: 'test', open };
}

/** What the database holds, read through a connection of its own. */
function contents(file: string) {
  const db = new Database(file, { readonly: true });
  db.defaultSafeIntegers(true);
  try {
    const windows = db.prepare('SELECT host, seq, start_ns FROM windows ORDER BY host, seq').all() as { host: string; seq: bigint; start_ns: bigint }[];
    const hosts = db.prepare('SELECT host, first_ns, last_ns, windows FROM hosts ORDER BY host').all() as { host: string; first_ns: bigint; last_ns: bigint; windows: bigint }[];
    const orphanProcesses = (db.prepare('SELECT count(*) AS n FROM processes WHERE window_id NOT IN (SELECT id FROM windows)').get() as { n: bigint }).n;
    const episodes = db.prepare('SELECT end_ns, open FROM episodes ORDER BY end_ns').all() as { end_ns: bigint; open: bigint }[];
    const captures = db.prepare('SELECT request_id FROM captures ORDER BY request_id').all() as { request_id: string }[];
    return { windows, hosts, orphanProcesses, episodes, captures: captures.map((c) => c.request_id) };
  } finally {
    db.close();
  }
}

const stores: SqliteStore[] = [];
after(async () => {
  for (const s of stores) await s.close();
});

function openStore(): { store: SqliteStore; file: string } {
  const file = path.join(tempDir('retention'), 'hotloop.sqlite');
  const store = new SqliteStore(file);
  stores.push(store);
  return { store, file };
}

describe('Retention on the SQLite store', () => {
  it('deletes old windows, captures and closed episodes, and keeps the hosts summary right', async () => {
    const { store, file } = openStore();
    // web-1: one window a day for ten days; db-1: only old windows.
    for (let d = 1; d <= 10; d++) await store.putWindow(windowAt('web-1', d, NOW - BigInt(11 - d) * DAY), 3);
    for (let s = 1; s <= 4; s++) await store.putWindow(windowAt('db-1', s, NOW - 9n * DAY + BigInt(s) * 60n * SECOND), 3);
    // On-demand captures, 9, 8, 7.5 and 1 days old.
    for (const [seq, age] of [[101, 9n * DAY], [102, 8n * DAY], [103, 7n * DAY + DAY / 2n], [104, DAY]] as const) {
      await store.putCapture(windowAt('web-1', seq, NOW - age), `cap-${seq}`, 3);
    }
    await store.saveEpisodes({ updated: [], opened: [episode('web-1', NOW - 9n * DAY, false), episode('web-1', NOW - 8n * DAY, true), episode('web-1', NOW - DAY, false)] });

    const deleted: RetentionBatch[] = [];
    const retention = new Retention({ store, maxAgeNs: 7n * DAY, log: silent, batchRows: 2, nowNs: () => NOW, onDeleted: (b) => deleted.push(b) });
    const total = await retention.sweep();

    const after = contents(file);
    assert.deepEqual(
      after.windows.map((w) => Number(w.seq)),
      [4, 5, 6, 7, 8, 9, 10],
      'web-1 keeps the windows that started within 7 days',
    );
    assert.ok(after.windows.every((w) => w.start_ns >= NOW - 7n * DAY));
    assert.deepEqual(total, { windows: 7, captures: 3, episodes: 1 });
    assert.deepEqual(after.captures, ['cap-104'], 'only the capture within 7 days is kept');
    assert.ok(deleted.length >= 4, `deleted in batches of at most 2 rows (${deleted.length} batches)`);
    assert.ok(deleted.every((b) => b.windows <= 2 && b.captures <= 2 && b.episodes <= 2));
    assert.equal(after.orphanProcesses, 0n, 'the processes of deleted windows went with them');
    assert.deepEqual(after.hosts, [{ host: 'web-1', first_ns: NOW - 7n * DAY, last_ns: NOW + 10n * SECOND - DAY, windows: 7n }], 'db-1 lost its last window and left the summary');
    assert.deepEqual((await store.listHosts()).map((h) => [h.host, h.windows]), [['web-1', 7]]);
    assert.deepEqual(
      after.episodes.map((e) => [e.end_ns, e.open]),
      [
        [NOW - 8n * DAY, 1n],
        [NOW - DAY, 0n],
      ],
      'the old open episode is still being extended, so it stays',
    );
    assert.deepEqual(await retention.sweep(), { windows: 0, captures: 0, episodes: 0 }, 'a second sweep finds nothing left');
  });

  it('lets a window be stored between its batches', async () => {
    const { store, file } = openStore();
    for (let s = 1; s <= 300; s++) await store.putWindow(windowAt('old-1', s, NOW - 30n * DAY + BigInt(s) * SECOND), 3);
    let batches = 0;
    const retention = new Retention({ store, maxAgeNs: 7n * DAY, log: silent, batchRows: 20, nowNs: () => NOW, onDeleted: () => batches++ });
    let batchesWhenStored = -1;
    const sweep = retention.sweep();
    // Queued behind the first batch: it runs when the sweep yields, not once the sweep is done.
    const ingest = new Promise<void>((resolve, reject) =>
      setImmediate(() => {
        batchesWhenStored = batches;
        store.putWindow(windowAt('web-2', 1, NOW - 60n * SECOND), 3).then(() => resolve(), reject);
      }),
    );
    await Promise.all([sweep, ingest]);
    assert.ok(batchesWhenStored >= 1 && batchesWhenStored < batches, `stored after batch ${batchesWhenStored} of ${batches}`);
    assert.deepEqual(
      contents(file).hosts.map((h) => [h.host, h.windows]),
      [['web-2', 1n]],
    );
  });
});

describe('collector --retention', { timeout: 60_000 }, () => {
  it('is read as a duration and reaches the collector', async () => {
    const collector = startHotloop(['collector', '--grpc', `127.0.0.1:${await freePort()}`, '--http', `127.0.0.1:${await freePort()}`, '--data', tempDir('retention-cli'), '--retention', '36h']);
    try {
      const started = await waitFor('the collector to start', () => logLines(collector.logs()).find((l) => l.msg === 'collector started'));
      assert.equal(started.retentionSeconds, 36 * 3600);
    } finally {
      assert.equal(await stopProcess(collector.child), 0);
    }
  });

  it('refuses a retention that is not a positive duration', async () => {
    for (const bad of ['0d', '7', 'a week', '-1d']) {
      const r = await runHotloop(['collector', '--data', tempDir('retention-cli'), '--retention', bad]);
      assert.equal(r.code, 1, bad);
      assert.match(r.stderr, /cannot read duration/, bad);
    }
  });
});
