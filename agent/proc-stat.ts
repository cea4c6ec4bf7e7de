// Parsers for the /proc files the agent reads about a process. Pure functions
// over file text, so they are tested against fixtures and fed real /proc.

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  /** Clock ticks spent in user / kernel mode. */
  utime: number;
  stime: number;
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
  // rest[0] is field 3 (state); utime/stime are fields 14/15, starttime 22.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  const startTime = Number(rest[19]);
  if (!Number.isInteger(pid) || !Number.isFinite(utime) || !Number.isFinite(stime) || !Number.isFinite(startTime)) return null;
  return { pid, comm: text.slice(open + 1, close), state: rest[0] ?? '?', utime, stime, startTime };
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
