// What the durability tests look at: the daemons' JSON log lines, a metric
// scraped from a /metrics endpoint, and the windows a collector's SQLite file
// holds (read through a connection of the test's own).
import { existsSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

export interface LogLine {
  msg: string;
  [field: string]: unknown;
}

export function logLines(text: string): LogLine[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

/** Sequence numbers of the windows an agent logged as captured, in log order. */
export function capturedSeqs(logs: string): number[] {
  return logLines(logs)
    .filter((l) => l.msg === 'window captured')
    .map((l) => Number(l.seq));
}

/** The value of one series (name plus exact label text, e.g. `{reason="disk-full"}`), or undefined if absent. */
export async function scrapeMetric(httpAddress: string, series: string): Promise<number | undefined> {
  const text = await (await fetch(`http://${httpAddress}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

export interface StoredWindowIds {
  agentId: string;
  seq: number;
}

/** (agent id, seq) of every stored window of the host, by seq; none before the collector created its database. */
export function storedWindows(dataDir: string, host: string): StoredWindowIds[] {
  const file = path.join(dataDir, 'hotloop.sqlite');
  if (!existsSync(file)) return [];
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT agent_id AS agentId, seq FROM windows WHERE host = ? ORDER BY seq, agent_id').all(host) as { agentId: string; seq: number }[]).map((r) => ({
      agentId: r.agentId,
      seq: Number(r.seq),
    }));
  } finally {
    db.close();
  }
}

/** The hosts summary row's window count, or 0 without a row. */
export function summaryWindowCount(dataDir: string, host: string): number {
  const db = new Database(path.join(dataDir, 'hotloop.sqlite'), { readonly: true });
  try {
    const row = db.prepare('SELECT windows FROM hosts WHERE host = ?').get(host) as { windows: number } | undefined;
    return row ? Number(row.windows) : 0;
  } finally {
    db.close();
  }
}

/** End time (unix ns) of the host's stored window with this seq. */
export function windowEndNs(dataDir: string, host: string, seq: number): bigint {
  const db = new Database(path.join(dataDir, 'hotloop.sqlite'), { readonly: true });
  db.defaultSafeIntegers(true);
  try {
    const row = db.prepare('SELECT end_ns FROM windows WHERE host = ? AND seq = ?').get(host, seq) as { end_ns: bigint } | undefined;
    if (!row) throw new Error(`no stored window ${seq} of ${host}`);
    return row.end_ns;
  } finally {
    db.close();
  }
}

/** 1..n */
export function oneTo(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}
