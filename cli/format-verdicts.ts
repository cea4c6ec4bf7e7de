// `hotloop verdicts` output: episodes as JSON, or as a table an on-call engineer
// can read at 3 a.m. (ongoing busy loops first, with their evidence and how
// often the service busy-looped before).
import type { ProcessEpisode } from '../proto/wire.js';
import { alignColumns } from './text-table.js';
import { formatUnixNanos } from './time-spec.js';

export interface EpisodeJson {
  host: string;
  pid: number;
  comm: string;
  exe: string;
  verdict: string;
  kind: string;
  score: number;
  /** RFC 3339. */
  start: string;
  end: string;
  windows: number;
  evidence: string;
  open: boolean;
  /** Earlier busy-loop episodes of the same service (exe + comm) on the host within 24 h. */
  recurrences: number;
}

/** Busy loops before working episodes; within each, open ones first, then the most recent. */
export function orderForOnCall(episodes: readonly ProcessEpisode[]): ProcessEpisode[] {
  const rank = (e: ProcessEpisode): number => (e.verdict === 'busy-loop' ? 0 : 2) + (e.open ? 0 : 1);
  return [...episodes].sort((a, b) => rank(a) - rank(b) || (b.startUnixNanos > a.startUnixNanos ? 1 : b.startUnixNanos < a.startUnixNanos ? -1 : 0) || a.host.localeCompare(b.host) || a.pid - b.pid);
}

export function episodeJson(e: ProcessEpisode): EpisodeJson {
  return {
    host: e.host,
    pid: e.pid,
    comm: e.comm,
    exe: e.exe,
    verdict: e.verdict,
    kind: e.kind,
    score: e.score,
    start: formatUnixNanos(e.startUnixNanos),
    end: formatUnixNanos(e.endUnixNanos),
    windows: e.windows,
    evidence: e.evidence,
    open: e.open,
    recurrences: e.recurrences,
  };
}

/** "3 h", "40 min": a span as people say it. */
export function formatSpan(ns: bigint): string {
  const seconds = Number(ns / 1_000_000_000n);
  if (seconds >= 2 * 86_400) return `${Math.round(seconds / 86_400)} d`;
  if (seconds >= 2 * 3600) return `${Math.round(seconds / 3600)} h`;
  if (seconds >= 120) return `${Math.round(seconds / 60)} min`;
  return `${seconds} s`;
}

/** The bounce-and-hope pattern in one sentence, or null for a first busy loop. */
export function recurrenceSentence(e: ProcessEpisode): string | null {
  if (e.recurrences === 0) return null;
  const times = e.recurrences + 1;
  const restarts =
    e.historyPids === times ? 'restarted each time' : e.historyPids === 1 ? `all in pid ${e.pid}` : `in ${e.historyPids} different processes`;
  return `busy-looped ${times} times in ${formatSpan(e.endUnixNanos - e.historySinceUnixNanos)}; ${restarts}`;
}

const HEADER = ['HOST', 'PID', 'COMM', 'KIND', 'SCORE', 'START', 'END', 'WINDOWS', 'STATE'];

function row(e: ProcessEpisode): string[] {
  return [e.host, String(e.pid), e.comm, e.kind, e.score.toFixed(2), formatUnixNanos(e.startUnixNanos), formatUnixNanos(e.endUnixNanos), String(e.windows), e.open ? 'ongoing' : 'ended'];
}

/**
 * `range` describes what was asked, for the heading and the nothing-found line;
 * `clientFlags` (e.g. ` --collector ADDR`) goes into the follow-up commands shown under each busy loop.
 */
export function formatEpisodesTable(episodes: readonly ProcessEpisode[], range: string, clientFlags = ''): string {
  const ordered = orderForOnCall(episodes);
  const busy = ordered.filter((e) => e.verdict === 'busy-loop');
  const working = ordered.filter((e) => e.verdict !== 'busy-loop');
  const lines: string[] = [];
  if (busy.length === 0) {
    lines.push(`no busy loops ${range}`);
  } else {
    lines.push(`BUSY LOOPS ${range}: ${busy.filter((e) => e.open).length} ongoing, ${busy.filter((e) => !e.open).length} ended`);
    const table = alignColumns([HEADER, ...busy.map(row)]);
    lines.push(table[0] ?? '');
    busy.forEach((e, i) => {
      lines.push(table[i + 1] ?? '', `    exe: ${e.exe}`, `    evidence: ${e.evidence}`);
      const recurrence = recurrenceSentence(e);
      if (recurrence) lines.push(`    ${recurrence}`);
      lines.push(`    profile: hotloop query${clientFlags} --host ${e.host} --pid ${e.pid} --from ${formatUnixNanos(e.startUnixNanos)} --to ${formatUnixNanos(e.endUnixNanos)}`);
      if (e.open) lines.push(`    now:     hotloop capture${clientFlags} --host ${e.host} --pid ${e.pid} --duration 30 --frequency 199`);
    });
  }
  if (working.length > 0) {
    lines.push('', `WORKING (hot, making progress) ${range}`, ...alignColumns([HEADER, ...working.map(row)]));
  }
  return lines.join('\n') + '\n';
}
