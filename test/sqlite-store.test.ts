import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteStore, WINDOW_PAGE_SQL } from '../collector/sqlite-store.js';
import type { StoredWindow } from '../collector/store.js';
import { encodeProfileGz } from '../proto/pprof.js';
import type { ProcessInfo, WindowUpload } from '../proto/wire.js';
import { cpuProfile } from './helpers/cpu-profiles.js';
import { tempDir } from './helpers/processes.js';

// Beyond 2^53, so a lossy number conversion anywhere would show.
const T0 = 1_700_000_000_123_456_789n;
const SECOND = 1_000_000_000n;

const dir = tempDir('sqlite-store');
const file = path.join(dir, 'hotloop.sqlite');
let store: SqliteStore;

function proc(pid: number, comm: string): ProcessInfo {
  return { pid, comm, exe: `/usr/bin/${comm}`, cmdline: `${comm} --serve`, cgroup: '/system.slice/x.service', containerId: '', hot: true, cpuCores: 0.97 };
}

function windowOf(host: string, agentId: string, seq: number, startNs: bigint, endNs: bigint): WindowUpload {
  return {
    host,
    agentId,
    seq,
    startUnixNanos: startNs,
    endUnixNanos: endNs,
    pprofGz: encodeProfileGz(cpuProfile([{ stack: ['spin', 'main'], pid: 7, comm: 'api', count: seq + 1 }], startNs, endNs - startNs)),
    processes: [proc(7, 'api'), proc(8, 'db')],
  };
}

async function collect(it: AsyncIterable<StoredWindow>): Promise<StoredWindow[]> {
  const out: StoredWindow[] = [];
  for await (const w of it) out.push(w);
  return out;
}

before(async () => {
  store = new SqliteStore(file);
  // host-a: ten back-to-back 10 s windows; host-b: two windows over the same time.
  for (let seq = 0; seq < 10; seq++) {
    const start = T0 + BigInt(seq) * 10n * SECOND;
    assert.deepEqual(await store.putWindow(windowOf('host-a', 'agent-a', seq, start, start + 10n * SECOND), seq + 1), { duplicate: false });
  }
  await store.putWindow(windowOf('host-b', 'agent-b', 0, T0, T0 + 10n * SECOND), 1);
  await store.putWindow(windowOf('host-b', 'agent-b', 1, T0 + 10n * SECOND, T0 + 20n * SECOND), 2);
});

after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a window stored again under the same (agent, seq) is a duplicate and stored once', async () => {
  const again = windowOf('host-a', 'agent-a', 3, T0 + 30n * SECOND, T0 + 40n * SECOND);
  assert.deepEqual(await store.putWindow(again, 4), { duplicate: true });
  const windows = await collect(store.windowsFor('host-a', T0, T0 + 100n * SECOND));
  assert.equal(windows.filter((w) => w.seq === 3).length, 1);
  assert.equal((await store.listHosts()).find((h) => h.host === 'host-a')?.windows, 10);
});

test('listHosts gives each host its first and last window time and window count', async () => {
  assert.deepEqual(await store.listHosts(), [
    { host: 'host-a', firstUnixNanos: T0, lastUnixNanos: T0 + 100n * SECOND, windows: 10 },
    { host: 'host-b', firstUnixNanos: T0, lastUnixNanos: T0 + 20n * SECOND, windows: 2 },
  ]);
  assert.equal(await store.hasHost('host-a'), true);
  assert.equal(await store.hasHost('host-c'), false);
});

test('windowsFor returns the host\'s windows overlapping the range, oldest first, exact nanos', async () => {
  // [T0+25s, T0+41s] overlaps windows 2 (20-30), 3 (30-40) and 4 (40-50).
  const windows = await collect(store.windowsFor('host-a', T0 + 25n * SECOND, T0 + 41n * SECOND));
  assert.deepEqual(
    windows.map((w) => [w.host, w.agentId, w.seq, w.startNs, w.endNs, w.sampleCount]),
    [
      ['host-a', 'agent-a', 2, T0 + 20n * SECOND, T0 + 30n * SECOND, 3],
      ['host-a', 'agent-a', 3, T0 + 30n * SECOND, T0 + 40n * SECOND, 4],
      ['host-a', 'agent-a', 4, T0 + 40n * SECOND, T0 + 50n * SECOND, 5],
    ],
  );
  assert.ok(windows.every((w) => w.pprofGz.length > 0 && w.receivedNs > T0));
  // Touching a window's end counts as overlap; a range after every window holds none.
  assert.deepEqual((await collect(store.windowsFor('host-a', T0 + 100n * SECOND, T0 + 200n * SECOND))).map((w) => w.seq), [9]);
  assert.deepEqual(await collect(store.windowsFor('host-a', T0 + 101n * SECOND, T0 + 200n * SECOND)), []);
  assert.deepEqual(await collect(store.windowsFor('host-c', T0, T0 + 200n * SECOND)), []);
});

test('a long window that starts well before the range is still found', async () => {
  await store.putWindow(windowOf('host-long', 'agent-long', 0, T0, T0 + 3600n * SECOND), 1);
  await store.putWindow(windowOf('host-long', 'agent-long', 1, T0 + 3600n * SECOND, T0 + 3601n * SECOND), 1);
  const windows = await collect(store.windowsFor('host-long', T0 + 1800n * SECOND, T0 + 1801n * SECOND));
  assert.deepEqual(windows.map((w) => w.seq), [0]);
});

test('windowsFor pages through more windows than one page holds, each exactly once', async () => {
  // Several windows share a start time, so the cursor must break ties by id.
  for (let seq = 0; seq < 150; seq++) {
    const start = T0 + BigInt(Math.floor(seq / 3)) * SECOND;
    await store.putWindow(windowOf('host-many', 'agent-many', seq, start, start + SECOND), 1);
  }
  const windows = await collect(store.windowsFor('host-many', 0n, T0 + 1000n * SECOND));
  assert.deepEqual(windows.map((w) => w.seq), Array.from({ length: 150 }, (_, i) => i));
});

test('the process list of a window is stored with it', () => {
  const db = new Database(file, { readonly: true });
  try {
    const rows = db
      .prepare(
        `SELECT p.pid, p.comm, p.exe, p.cmdline, p.cgroup, p.container_id, p.hot, p.cpu_cores
         FROM processes p JOIN windows w ON w.id = p.window_id WHERE w.agent_id = 'agent-b' AND w.seq = 1 ORDER BY p.pid`,
      )
      .all();
    assert.deepEqual(rows, [
      { pid: 7, comm: 'api', exe: '/usr/bin/api', cmdline: 'api --serve', cgroup: '/system.slice/x.service', container_id: '', hot: 1, cpu_cores: 0.97 },
      { pid: 8, comm: 'db', exe: '/usr/bin/db', cmdline: 'db --serve', cgroup: '/system.slice/x.service', container_id: '', hot: 1, cpu_cores: 0.97 },
    ]);
  } finally {
    db.close();
  }
});

test('the range query seeks the (host, start_ns) index instead of scanning other hosts\' rows', () => {
  const db = new Database(file, { readonly: true });
  try {
    const plan = db
      .prepare(`EXPLAIN QUERY PLAN ${WINDOW_PAGE_SQL}`)
      .all({ host: 'host-a', from: 0, to: 1, afterStart: 0, afterId: -1, limit: 64 }) as { detail: string }[];
    const details = plan.map((r) => r.detail);
    assert.equal(details.length, 1, details.join(' | '));
    assert.match(details[0] ?? '', /^SEARCH windows USING INDEX windows_host_start \(host=\? AND start_ns>\? AND start_ns<\?\)$/);
  } finally {
    db.close();
  }
});

test('a window that ends before it starts is refused', async () => {
  await assert.rejects(store.putWindow(windowOf('host-a', 'agent-a', 99, T0 + SECOND, T0), 1), /ends .* before it starts/);
});

test('data is still there after the store is closed and reopened', async () => {
  const before = await store.listHosts();
  await store.close();
  store = new SqliteStore(file);
  assert.deepEqual(await store.listHosts(), before);
  const windows = await collect(store.windowsFor('host-b', T0, T0 + 20n * SECOND));
  assert.deepEqual(windows.map((w) => w.seq), [0, 1]);
});
