// The /proc files the agent reads about a process: parsers are pure functions
// over file text (tested against fixtures and fed real /proc), plus the two
// reads every caller needs.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  /** Clock ticks spent in user / kernel mode. */
  utime: number;
  stime: number;
  /** Clock ticks of its children that have exited and been reaped. */
  cutime: number;
  cstime: number;
  /** Start time in clock ticks after boot: with pid, identifies a process across pid reuse. */
  startTime: number;
}

/** Parses /proc/PID/stat; comm may contain spaces and parentheses, so it ends at the last ')'. */
export function parseProcStat(text: string): ProcStat | null {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  const pid = Number(text.slice(0, open).trim());
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state); utime/stime/cutime/cstime are fields 14-17, starttime 22.
  const [utime, stime, cutime, cstime] = rest.slice(11, 15).map(Number);
  const startTime = Number(rest[19]);
  if (!Number.isInteger(pid) || ![utime, stime, cutime, cstime, startTime].every(Number.isFinite)) return null;
  return { pid, comm: text.slice(open + 1, close), state: rest[0] ?? '?', utime: utime!, stime: stime!, cutime: cutime!, cstime: cstime!, startTime };
}

/** A /proc file's text, or null when the process (or thread) is gone or the file unreadable. */
export function readProcText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** Direct children of a process: any of its threads may have spawned them. */
export function childPids(pid: number | 'self', procRoot = '/proc'): number[] {
  const taskDir = path.join(procRoot, String(pid), 'task');
  let tids: string[];
  try {
    tids = readdirSync(taskDir);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const tid of tids) {
    const text = readProcText(path.join(taskDir, tid, 'children'))?.trim();
    if (text) out.push(...text.split(/\s+/).map(Number));
  }
  return out;
}

/** /proc/PID/cmdline is NUL-separated; shown space-separated and bounded. */
export function parseCmdline(raw: string, maxLength = 4096): string {
  const text = raw.replace(/\0+$/, '').replace(/\0/g, ' ');
  return text.length > maxLength ? text.slice(0, maxLength) : text;
}

/** The cgroup v2 path ("0::/path"), or the first v1 line's path when there is no v2 entry. */
export function parseCgroup(text: string): string {
  const lines = text.split('\n').filter((l) => l.length > 0);
  const v2 = lines.find((l) => l.startsWith('0::'));
  const line = v2 ?? lines[0];
  if (!line) return '';
  const parts = line.split(':');
  return parts.slice(2).join(':');
}

/**
 * Container id from a cgroup path: docker (docker-<id>.scope, /docker/<id>),
 * containerd/CRI (cri-containerd-<id>.scope), CRI-O (crio-<id>), podman (libpod-<id>).
 */
export function containerIdFromCgroup(cgroupPath: string): string {
  const m = /(?:^|[/-])([0-9a-f]{64})(?:\.scope)?(?:\/|$)/.exec(cgroupPath);
  return m?.[1] ?? '';
}
