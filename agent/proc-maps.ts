// Parses /proc/PID/maps: which file (and which part of it) backs each range
// of a process's address space.

export interface ProcMapsEntry {
  start: bigint;
  /** Exclusive. */
  end: bigint;
  /** e.g. 'r-xp'. */
  perms: string;
  /** File offset mapped at `start`. */
  offset: bigint;
  inode: bigint;
  /** As the process sees it; '' for anonymous memory, '[vdso]' etc. for kernel-provided ranges. */
  path: string;
  /** The file was unlinked or replaced after it was mapped. */
  deleted: boolean;
}

const DELETED_SUFFIX = ' (deleted)';

// start-end perms offset dev inode [path]; the path may itself contain spaces.
const MAPS_LINE = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S+)\s+([0-9a-f]+)\s+\S+\s+(\d+)\s*(.*)$/;

function parseLine(line: string): ProcMapsEntry | null {
  const m = MAPS_LINE.exec(line);
  if (m === null) return null;
  let path = m[6];
  const deleted = path.endsWith(DELETED_SUFFIX);
  if (deleted) path = path.slice(0, -DELETED_SUFFIX.length);
  return {
    start: BigInt(`0x${m[1]}`),
    end: BigInt(`0x${m[2]}`),
    perms: m[3],
    offset: BigInt(`0x${m[4]}`),
    inode: BigInt(m[5]),
    path,
    deleted,
  };
}

/** Entries in file order, which the kernel keeps sorted by start address. */
export function parseProcMaps(text: string): ProcMapsEntry[] {
  const entries: ProcMapsEntry[] = [];
  for (const line of text.split('\n')) {
    const entry = parseLine(line);
    if (entry !== null) entries.push(entry);
  }
  return entries;
}

/** Name of the entry under /proc/PID/map_files/, which opens the exact file that was mapped. */
export function mapFilesName(entry: ProcMapsEntry): string {
  return `${entry.start.toString(16)}-${entry.end.toString(16)}`;
}

/** Binary search over entries sorted by start. */
export function findMapsEntry<T extends { start: bigint; end: bigint }>(entries: readonly T[], address: bigint): T | null {
  let lo = 0;
  let hi = entries.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const e = entries[mid];
    if (address < e.start) hi = mid - 1;
    else if (address >= e.end) lo = mid + 1;
    else return e;
  }
  return null;
}
