// ProfileStore on one SQLite file (better-sqlite3).
//
// Durability: WAL with synchronous=FULL. An ack tells the agent it may drop its
// copy of the window, so a commit must survive the collector's machine going
// down, not only the collector process (WAL+NORMAL only survives the latter).
// FULL costs one WAL fsync per window, and windows arrive seconds apart per host.
import Database from 'better-sqlite3';
import type { HostSummary, WindowUpload } from '../proto/wire.js';
import type { EpisodeChanges, EpisodeQuery, EpisodeWithHistory, ProfileStore, PutResult, RetentionBatch, ServiceFleet, StoredWindow } from './store.js';
import type { Episode } from './verdict-types.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS windows (
  id INTEGER PRIMARY KEY,
  host TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  start_ns INTEGER NOT NULL,
  end_ns INTEGER NOT NULL,
  received_ns INTEGER NOT NULL,
  pprof_gz BLOB NOT NULL,
  sample_count INTEGER NOT NULL,
  UNIQUE (agent_id, seq)
);
CREATE INDEX IF NOT EXISTS windows_host_start ON windows (host, start_ns);

CREATE TABLE IF NOT EXISTS processes (
  window_id INTEGER NOT NULL REFERENCES windows (id) ON DELETE CASCADE,
  pid INTEGER NOT NULL,
  comm TEXT NOT NULL,
  exe TEXT NOT NULL,
  cmdline TEXT NOT NULL,
  cgroup TEXT NOT NULL,
  container_id TEXT NOT NULL,
  hot INTEGER NOT NULL,
  cpu_cores REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS processes_window ON processes (window_id);
CREATE INDEX IF NOT EXISTS processes_comm_exe ON processes (comm, exe);

-- One row per host, kept in the same transaction as its windows: listing hosts
-- must not scan every window, and max_window_ns bounds how far before a range's
-- start a window overlapping it can begin.
CREATE TABLE IF NOT EXISTS hosts (
  host TEXT PRIMARY KEY,
  first_ns INTEGER NOT NULL,
  last_ns INTEGER NOT NULL,
  windows INTEGER NOT NULL,
  max_window_ns INTEGER NOT NULL
);

-- On-demand captures, apart from the continuous windows: a range query must not
-- count their samples twice, and the classifier sees only regular windows.
CREATE TABLE IF NOT EXISTS captures (
  request_id TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  start_ns INTEGER NOT NULL,
  end_ns INTEGER NOT NULL,
  received_ns INTEGER NOT NULL,
  pprof_gz BLOB NOT NULL,
  sample_count INTEGER NOT NULL,
  UNIQUE (agent_id, seq)
);
CREATE INDEX IF NOT EXISTS captures_start ON captures (start_ns);

-- Consecutive windows of one process with one verdict (see episode-tracker.ts).
CREATE TABLE IF NOT EXISTS episodes (
  id INTEGER PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  comm TEXT NOT NULL,
  exe TEXT NOT NULL,
  verdict TEXT NOT NULL,
  kind TEXT NOT NULL,
  score REAL NOT NULL,
  start_ns INTEGER NOT NULL,
  end_ns INTEGER NOT NULL,
  windows INTEGER NOT NULL,
  evidence TEXT NOT NULL,
  open INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS episodes_host_start ON episodes (host, start_ns);
-- Recurrences: earlier episodes of the same service on the host.
CREATE INDEX IF NOT EXISTS episodes_host_service ON episodes (host, exe, comm, start_ns);
-- Ranges are mostly recent: episodes ending after the range's start.
CREATE INDEX IF NOT EXISTS episodes_end ON episodes (end_ns);
-- Every window of a host reads its open episodes.
CREATE INDEX IF NOT EXISTS episodes_open ON episodes (host) WHERE open = 1;
`;

/**
 * One page of a host's windows overlapping [from, to], resuming after the
 * (start_ns, id) cursor. Exported so tests can EXPLAIN exactly this query.
 */
export const WINDOW_PAGE_SQL = `
SELECT id, host, agent_id, seq, start_ns, end_ns, received_ns, pprof_gz, sample_count
FROM windows
WHERE host = @host
  AND start_ns >= @afterStart AND start_ns <= @to
  AND (start_ns > @afterStart OR id > @afterId)
  AND end_ns >= @from
ORDER BY start_ns, id
LIMIT @limit`;

/**
 * Episodes overlapping [from, to] (of one host, or all when the host clause is
 * empty), each with the reported busy loops of its service on its host that
 * started within the look-back before it. Exported so tests can EXPLAIN it.
 */
export const episodesSql = (oneHost: boolean): string => `
SELECT e.*,
  count(r.id) AS recurrences,
  coalesce(min(r.start_ns), e.start_ns) AS history_since_ns,
  count(DISTINCT r.pid) + (coalesce(max(r.pid = e.pid), 0) = 0) AS history_pids
FROM episodes e
LEFT JOIN episodes r
  ON r.host = e.host AND r.exe = e.exe AND r.comm = e.comm
  AND r.start_ns < e.start_ns AND r.start_ns >= e.start_ns - @lookback
  AND r.verdict = 'busy-loop' AND r.windows >= @minWindows
WHERE ${oneHost ? 'e.host = @host AND ' : ''}e.start_ns <= @to AND e.end_ns >= @from
  AND NOT (e.verdict = 'busy-loop' AND e.windows < @minWindows)
GROUP BY e.id
ORDER BY e.host, e.start_ns, e.pid, e.id`;

/** Windows read per page: bounds memory when a range spans many gzipped profiles. */
const PAGE_ROWS = 64;

interface WindowRow {
  id: bigint;
  host: string;
  agent_id: string;
  seq: bigint;
  start_ns: bigint;
  end_ns: bigint;
  received_ns: bigint;
  pprof_gz: Buffer;
  sample_count: bigint;
}

interface EpisodeRow {
  id: bigint;
  host: string;
  pid: bigint;
  comm: string;
  exe: string;
  verdict: string;
  kind: string;
  score: number;
  start_ns: bigint;
  end_ns: bigint;
  windows: bigint;
  evidence: string;
  open: bigint;
}

interface EpisodeHistoryRow extends EpisodeRow {
  recurrences: bigint;
  history_since_ns: bigint;
  history_pids: bigint;
}

interface HostRow {
  host: string;
  first_ns: bigint;
  last_ns: bigint;
  windows: bigint;
  max_window_ns: bigint;
}

export class SqliteStore implements ProfileStore {
  private readonly db: Database.Database;
  private readonly insertCapture: Database.Statement;
  private readonly selectCapture: Database.Statement;
  private readonly insertWindowTx: (window: WindowUpload, sampleCount: number, receivedNs: bigint) => PutResult;
  private readonly selectPage: Database.Statement;
  private readonly selectHost: Database.Statement;
  private readonly selectHosts: Database.Statement;
  private readonly saveEpisodesTx: (changes: EpisodeChanges) => Episode[];
  private readonly selectOpenEpisodes: Database.Statement;
  private readonly selectAllOpenEpisodes: Database.Statement;
  private readonly selectHostEpisodes: Database.Statement;
  private readonly selectAllEpisodes: Database.Statement;
  private readonly selectBusyServices: Database.Statement;
  private readonly selectServiceHosts: Database.Statement;
  private readonly deleteBatchTx: (cutoffNs: bigint, limit: number) => RetentionBatch;

  /** Opens (creating if needed) the database file at `file`. */
  constructor(file: string) {
    this.db = new Database(file);
    const mode: unknown = this.db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new Error(`${file}: SQLite refused WAL mode (got ${String(mode)})`);
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    // Nanosecond times exceed 2^53: read every INTEGER as bigint, narrow the small ones explicitly.
    this.db.defaultSafeIntegers(true);
    this.db.exec(SCHEMA);

    const insertWindow = this.db.prepare(`
      INSERT INTO windows (host, agent_id, seq, start_ns, end_ns, received_ns, pprof_gz, sample_count)
      VALUES (@host, @agentId, @seq, @startNs, @endNs, @receivedNs, @pprofGz, @sampleCount)
      ON CONFLICT (agent_id, seq) DO NOTHING`);
    const insertProcess = this.db.prepare(`
      INSERT INTO processes (window_id, pid, comm, exe, cmdline, cgroup, container_id, hot, cpu_cores)
      VALUES (@windowId, @pid, @comm, @exe, @cmdline, @cgroup, @containerId, @hot, @cpuCores)`);
    const upsertHost = this.db.prepare(`
      INSERT INTO hosts (host, first_ns, last_ns, windows, max_window_ns)
      VALUES (@host, @startNs, @endNs, 1, @lengthNs)
      ON CONFLICT (host) DO UPDATE SET
        first_ns = min(first_ns, excluded.first_ns),
        last_ns = max(last_ns, excluded.last_ns),
        windows = windows + 1,
        max_window_ns = max(max_window_ns, excluded.max_window_ns)`);

    this.insertWindowTx = this.db.transaction((w: WindowUpload, sampleCount: number, receivedNs: bigint): PutResult => {
      const inserted = insertWindow.run({
        host: w.host,
        agentId: w.agentId,
        seq: BigInt(w.seq),
        startNs: w.startUnixNanos,
        endNs: w.endUnixNanos,
        receivedNs,
        pprofGz: w.pprofGz,
        sampleCount: BigInt(sampleCount),
      });
      if (inserted.changes === 0) return { duplicate: true };
      for (const p of w.processes) {
        insertProcess.run({
          windowId: inserted.lastInsertRowid,
          pid: p.pid,
          comm: p.comm,
          exe: p.exe,
          cmdline: p.cmdline,
          cgroup: p.cgroup,
          containerId: p.containerId,
          hot: p.hot ? 1 : 0,
          cpuCores: p.cpuCores,
        });
      }
      upsertHost.run({ host: w.host, startNs: w.startUnixNanos, endNs: w.endUnixNanos, lengthNs: w.endUnixNanos - w.startUnixNanos });
      return { duplicate: false };
    });
    this.insertCapture = this.db.prepare(`
      INSERT INTO captures (request_id, host, agent_id, seq, start_ns, end_ns, received_ns, pprof_gz, sample_count)
      VALUES (@requestId, @host, @agentId, @seq, @startNs, @endNs, @receivedNs, @pprofGz, @sampleCount)
      ON CONFLICT DO NOTHING`);
    this.selectCapture = this.db.prepare('SELECT * FROM captures WHERE host = ? AND request_id = ?');
    this.selectPage = this.db.prepare(WINDOW_PAGE_SQL);
    this.selectHost = this.db.prepare('SELECT * FROM hosts WHERE host = ?');
    this.selectHosts = this.db.prepare('SELECT * FROM hosts ORDER BY host');

    const insertEpisode = this.db.prepare(`
      INSERT INTO episodes (host, pid, comm, exe, verdict, kind, score, start_ns, end_ns, windows, evidence, open)
      VALUES (@host, @pid, @comm, @exe, @verdict, @kind, @score, @startNs, @endNs, @windows, @evidence, @open)`);
    const updateEpisode = this.db.prepare(`
      UPDATE episodes SET score = @score, end_ns = @endNs, windows = @windows, evidence = @evidence, open = @open WHERE id = @id`);
    const episodeParams = (e: Omit<Episode, 'id'>) => ({ ...e, open: e.open ? 1 : 0 });
    this.saveEpisodesTx = this.db.transaction((changes: EpisodeChanges): Episode[] => {
      for (const e of changes.updated) {
        if (updateEpisode.run({ id: e.id, score: e.score, endNs: e.endNs, windows: e.windows, evidence: e.evidence, open: e.open ? 1 : 0 }).changes !== 1) {
          throw new Error(`episode ${e.id} (host ${e.host} pid ${e.pid}) is not stored`);
        }
      }
      return changes.opened.map((e) => ({ ...e, id: Number(insertEpisode.run(episodeParams(e)).lastInsertRowid) }));
    });
    this.selectOpenEpisodes = this.db.prepare('SELECT * FROM episodes WHERE host = ? AND open = 1 ORDER BY id');
    this.selectAllOpenEpisodes = this.db.prepare('SELECT * FROM episodes WHERE open = 1 ORDER BY id');
    this.selectHostEpisodes = this.db.prepare(episodesSql(true));
    this.selectAllEpisodes = this.db.prepare(episodesSql(false));
    this.selectBusyServices = this.db.prepare(`
      SELECT DISTINCT exe, comm, host FROM episodes
      WHERE verdict = 'busy-loop' AND windows >= @minWindows AND start_ns <= @to AND end_ns >= @from
      ORDER BY exe, comm, host`);
    // Windows overlapping the range are bounded as in windowsFor: none starts more than max_window_ns before it.
    this.selectServiceHosts = this.db.prepare(`
      WITH busy AS MATERIALIZED (
        SELECT DISTINCT exe, comm FROM episodes
        WHERE verdict = 'busy-loop' AND windows >= @minWindows AND start_ns <= @to AND end_ns >= @from)
      SELECT p.exe, p.comm, count(DISTINCT w.host) AS hosts
      FROM hosts h
      JOIN windows w ON w.host = h.host AND w.start_ns >= @from - h.max_window_ns AND w.start_ns <= @to AND w.end_ns >= @from
      JOIN processes p ON p.window_id = w.id
      JOIN busy b ON b.exe = p.exe AND b.comm = p.comm
      GROUP BY p.exe, p.comm`);

    // Retention. Windows go oldest first through the (host, start_ns) index; each host's
    // summary row is fixed in the same transaction, and removed with its last window.
    const selectHostsWithOldWindows = this.db.prepare('SELECT host FROM hosts WHERE first_ns < ? ORDER BY first_ns');
    const deleteOldWindows = this.db.prepare(`
      DELETE FROM windows WHERE id IN (
        SELECT id FROM windows WHERE host = @host AND start_ns < @cutoff ORDER BY start_ns LIMIT @limit)`);
    const shrinkHost = this.db.prepare(`
      UPDATE hosts SET windows = windows - @deleted,
        first_ns = coalesce((SELECT min(start_ns) FROM windows WHERE host = @host), first_ns)
      WHERE host = @host`);
    const deleteEmptyHost = this.db.prepare('DELETE FROM hosts WHERE host = @host AND NOT EXISTS (SELECT 1 FROM windows WHERE host = @host)');
    // Open episodes stay, however old: they are still being extended.
    const deleteOldCaptures = this.db.prepare(`
      DELETE FROM captures WHERE request_id IN (
        SELECT request_id FROM captures WHERE start_ns < @cutoff ORDER BY start_ns LIMIT @limit)`);
    const deleteOldEpisodes = this.db.prepare(`
      DELETE FROM episodes WHERE id IN (
        SELECT id FROM episodes WHERE open = 0 AND end_ns < @cutoff ORDER BY end_ns LIMIT @limit)`);
    this.deleteBatchTx = this.db.transaction((cutoff: bigint, limit: number): RetentionBatch => {
      let windows = 0;
      for (const { host } of selectHostsWithOldWindows.all(cutoff) as { host: string }[]) {
        if (windows >= limit) break;
        const deleted = deleteOldWindows.run({ host, cutoff, limit: limit - windows }).changes;
        shrinkHost.run({ host, deleted });
        deleteEmptyHost.run({ host });
        windows += deleted;
      }
      const captures = deleteOldCaptures.run({ cutoff, limit }).changes;
      const episodes = deleteOldEpisodes.run({ cutoff, limit }).changes;
      return { windows, captures, episodes };
    });
  }

  async deleteBatchBefore(cutoffNs: bigint, limit: number): Promise<RetentionBatch> {
    return this.deleteBatchTx(cutoffNs, limit);
  }

  async putWindow(window: WindowUpload, sampleCount: number): Promise<PutResult> {
    // max_window_ns relies on it: a negative length would hide windows from range queries.
    if (window.endUnixNanos < window.startUnixNanos) throw new Error(`window ends (${window.endUnixNanos}) before it starts (${window.startUnixNanos})`);
    return this.insertWindowTx(window, sampleCount, BigInt(Date.now()) * 1_000_000n);
  }

  async putCapture(capture: WindowUpload, requestId: string, sampleCount: number): Promise<PutResult> {
    const inserted = this.insertCapture.run({
      requestId,
      host: capture.host,
      agentId: capture.agentId,
      seq: BigInt(capture.seq),
      startNs: capture.startUnixNanos,
      endNs: capture.endUnixNanos,
      receivedNs: BigInt(Date.now()) * 1_000_000n,
      pprofGz: capture.pprofGz,
      sampleCount: BigInt(sampleCount),
    });
    return { duplicate: inserted.changes === 0 };
  }

  async captureFor(host: string, requestId: string): Promise<StoredWindow | undefined> {
    const row = this.selectCapture.get(host, requestId) as (WindowRow & { request_id: string }) | undefined;
    return row ? toStoredWindow({ ...row, id: 0n }) : undefined;
  }

  async listHosts(): Promise<HostSummary[]> {
    return (this.selectHosts.all() as HostRow[]).map((r) => ({
      host: r.host,
      firstUnixNanos: r.first_ns,
      lastUnixNanos: r.last_ns,
      windows: Number(r.windows),
    }));
  }

  async hasHost(host: string): Promise<boolean> {
    return this.selectHost.get(host) !== undefined;
  }

  async *windowsFor(host: string, fromNs: bigint, toNs: bigint): AsyncIterable<StoredWindow> {
    const summary = this.selectHost.get(host) as HostRow | undefined;
    if (!summary) return;
    let afterStart = fromNs - summary.max_window_ns;
    let afterId = -1n;
    for (;;) {
      const rows = this.selectPage.all({ host, from: fromNs, to: toNs, afterStart, afterId, limit: PAGE_ROWS }) as WindowRow[];
      for (const r of rows) yield toStoredWindow(r);
      const last = rows.at(-1);
      if (!last || rows.length < PAGE_ROWS) return;
      afterStart = last.start_ns;
      afterId = last.id;
    }
  }

  async openEpisodes(host?: string): Promise<Episode[]> {
    const rows = (host === undefined ? this.selectAllOpenEpisodes.all() : this.selectOpenEpisodes.all(host)) as EpisodeRow[];
    return rows.map(toEpisode);
  }

  async saveEpisodes(changes: EpisodeChanges): Promise<Episode[]> {
    return this.saveEpisodesTx(changes);
  }

  async episodesIn(q: EpisodeQuery): Promise<EpisodeWithHistory[]> {
    const params = { from: q.fromNs, to: q.toNs, minWindows: q.minBusyLoopWindows, lookback: q.recurrenceLookbackNs };
    const rows = (q.host === '' ? this.selectAllEpisodes.all(params) : this.selectHostEpisodes.all({ ...params, host: q.host })) as EpisodeHistoryRow[];
    return rows.map((r) => ({ ...toEpisode(r), recurrences: Number(r.recurrences), historySinceNs: r.history_since_ns, historyPids: Number(r.history_pids) }));
  }

  async fleetIn(fromNs: bigint, toNs: bigint, minBusyLoopWindows: number): Promise<ServiceFleet[]> {
    const params = { from: fromNs, to: toNs, minWindows: minBusyLoopWindows };
    const running = new Map<string, number>();
    for (const r of this.selectServiceHosts.all(params) as { exe: string; comm: string; hosts: bigint }[]) running.set(serviceKey(r), Number(r.hosts));
    const services = new Map<string, ServiceFleet>();
    for (const r of this.selectBusyServices.all(params) as { exe: string; comm: string; host: string }[]) {
      const key = serviceKey(r);
      const service = services.get(key) ?? { exe: r.exe, comm: r.comm, busyLoopingHosts: [], hostsRunning: running.get(key) ?? 0 };
      service.busyLoopingHosts.push(r.host);
      services.set(key, service);
    }
    return [...services.values()];
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

function serviceKey(s: { exe: string; comm: string }): string {
  return `${s.exe}\0${s.comm}`;
}

function toEpisode(r: EpisodeRow): Episode {
  return {
    id: Number(r.id),
    host: r.host,
    pid: Number(r.pid),
    comm: r.comm,
    exe: r.exe,
    // Written only from typed Episodes by saveEpisodes.
    verdict: r.verdict as Episode['verdict'],
    kind: r.kind as Episode['kind'],
    score: r.score,
    startNs: r.start_ns,
    endNs: r.end_ns,
    windows: Number(r.windows),
    evidence: r.evidence,
    open: r.open === 1n,
  };
}

function toStoredWindow(r: WindowRow): StoredWindow {
  return {
    id: Number(r.id),
    host: r.host,
    agentId: r.agent_id,
    seq: Number(r.seq),
    startNs: r.start_ns,
    endNs: r.end_ns,
    receivedNs: r.received_ns,
    pprofGz: r.pprof_gz,
    sampleCount: Number(r.sample_count),
  };
}
