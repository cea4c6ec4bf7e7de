// The agent's on-disk spool. Every finished window is written here (fsync,
// then an atomic rename) before it is sent, and deleted only once the
// collector has acked it, so windows outlive a collector outage and an agent
// restart. The spool also keeps the agent's identity, its agent id and next
// sequence number: a restarted agent continues its sequence, so the
// collector's (agent id, seq) dedupe never mistakes a new window for an old one.
//
//   DIR/lock              flock-ed while an agent owns the spool
//   DIR/state.json        {"host", "agentId", "nextSeq"}
//   DIR/windows/<seq>.pb  one encoded WindowUpload per unacked window
import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { codecs, type WindowUpload } from '../proto/wire.js';
import { tryLockExclusive } from './libc.js';
import type { WindowQueue } from './window-queue.js';

export const DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024;

/**
 * spool-full: the size bound was reached; disk-full: the filesystem refused the write;
 * unreadable: a spooled file could not be decoded; host-renamed: left by the agent under another host name.
 */
export type SpoolDropReason = 'spool-full' | 'disk-full' | 'unreadable' | 'host-renamed';

export interface SpoolDrop {
  seq: number;
  bytes: number;
  reason: SpoolDropReason;
  /** Windows this spool has dropped so far, this one included. */
  dropped: number;
}

export interface WindowSpoolOptions {
  dir: string;
  /** The host name windows are sent as. Windows spooled under another name could never be sent, so they are dropped. */
  host: string;
  /** Bound on the windows' total size; the oldest are dropped to stay under it. */
  maxBytes?: number;
  /** Called for every dropped window, so the agent can log and count it. */
  onDrop?: (drop: SpoolDrop) => void;
}

interface SpoolState {
  host: string;
  agentId: string;
  nextSeq: number;
}

const STATE_FILE = 'state.json';
const LOCK_FILE = 'lock';
const WINDOWS_DIR = 'windows';
const WINDOW_FILE = /^(\d{1,15})\.pb$/;
const TEMP_SUFFIX = '.tmp';

export class WindowSpool implements WindowQueue {
  readonly agentId: string;
  /** Windows written to disk by this process. */
  written = 0;
  dropped = 0;
  readonly droppedBy: Record<SpoolDropReason, number> = { 'spool-full': 0, 'disk-full': 0, unreadable: 0, 'host-renamed': 0 };
  private readonly dir: string;
  private readonly windowsDir: string;
  private readonly host: string;
  private readonly maxBytes: number;
  private readonly onDrop: (drop: SpoolDrop) => void;
  private lockFd: number | undefined;
  /** seq → file size, oldest first. */
  private readonly index = new Map<number, number>();
  private totalBytes = 0;
  private nextSeq: number;
  /** nextSeq as last made durable in the state file. */
  private persistedNextSeq: number;

  /** Opens (creating if needed) the spool in opts.dir; throws if another agent holds it. */
  constructor(opts: WindowSpoolOptions) {
    this.dir = opts.dir;
    this.windowsDir = path.join(opts.dir, WINDOWS_DIR);
    this.host = opts.host;
    this.maxBytes = opts.maxBytes ?? DEFAULT_SPOOL_MAX_BYTES;
    this.onDrop = opts.onDrop ?? (() => {});
    mkdirSync(this.windowsDir, { recursive: true, mode: 0o700 });
    this.lockFd = lockSpool(this.dir);
    try {
      const state = readState(this.dir);
      this.scanWindows();
      const kept = state?.host === opts.host ? state : undefined;
      if (state && !kept) for (const seq of this.pendingSeqs()) this.dropSpooled('host-renamed', seq);
      this.agentId = kept?.agentId ?? `${opts.host}/${randomUUID()}`;
      this.persistedNextSeq = kept?.nextSeq ?? 0;
      this.nextSeq = Math.max(kept?.nextSeq ?? 1, (this.pendingSeqs().at(-1) ?? 0) + 1);
      // A new identity is on disk before any window uses it.
      this.persistNextSeq(this.nextSeq);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** The sequence number for the next window; never one handed out before, across restarts. */
  allocateSeq(): number {
    return this.nextSeq++;
  }

  /** Total size of the spooled windows. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** Number of spooled windows. */
  get windows(): number {
    return this.index.size;
  }

  /** Writes the window durably; drops the oldest windows (or, with nothing older left, this one) when full. */
  add(window: WindowUpload): void {
    if (this.lockFd === undefined) throw new Error(`spool ${this.dir} is closed`);
    this.nextSeq = Math.max(this.nextSeq, window.seq + 1);
    const bytes = codecs.windowUpload.encode(window);
    if (bytes.length > this.maxBytes) {
      this.dropUnwritten(window.seq, bytes.length, 'spool-full');
      return;
    }
    while (this.index.size > 0 && this.totalBytes + bytes.length > this.maxBytes) this.dropSpooled('spool-full');
    for (;;) {
      try {
        // Before the window: once it is acked and deleted, only the state still says its seq was used.
        this.persistNextSeq(window.seq + 1);
        writeFileDurably(this.windowsDir, windowFileName(window.seq), bytes);
        break;
      } catch (err) {
        if (!isOutOfSpace(err)) throw err;
        if (this.index.size === 0) {
          this.dropUnwritten(window.seq, bytes.length, 'disk-full');
          return;
        }
        this.dropSpooled('disk-full');
      }
    }
    this.index.set(window.seq, bytes.length);
    this.totalBytes += bytes.length;
    this.written++;
  }

  remove(seq: number): void {
    const size = this.index.get(seq);
    if (size === undefined) return;
    // No directory fsync: a deletion lost in a crash only means the window is sent again, and the collector dedupes it.
    rmSync(this.windowPath(seq), { force: true });
    this.index.delete(seq);
    this.totalBytes -= size;
  }

  has(seq: number): boolean {
    return this.index.has(seq);
  }

  pendingSeqs(): number[] {
    return [...this.index.keys()];
  }

  read(seq: number): WindowUpload | undefined {
    if (!this.index.has(seq)) return undefined;
    try {
      return codecs.windowUpload.decode(readFileSync(this.windowPath(seq)));
    } catch {
      this.dropSpooled('unreadable', seq);
      return undefined;
    }
  }

  /** Releases the spool to the next agent. */
  close(): void {
    if (this.lockFd === undefined) return;
    closeSync(this.lockFd);
    this.lockFd = undefined;
  }

  private windowPath(seq: number): string {
    return path.join(this.windowsDir, windowFileName(seq));
  }

  private scanWindows(): void {
    const found: { seq: number; size: number }[] = [];
    for (const name of readdirSync(this.windowsDir)) {
      // A write the agent did not finish; its window was never acked, nor even sent.
      if (name.endsWith(TEMP_SUFFIX)) rmSync(path.join(this.windowsDir, name), { force: true });
      const match = WINDOW_FILE.exec(name);
      if (match) found.push({ seq: Number(match[1]), size: statSync(path.join(this.windowsDir, name)).size });
    }
    found.sort((a, b) => a.seq - b.seq);
    for (const { seq, size } of found) {
      this.index.set(seq, size);
      this.totalBytes += size;
    }
  }

  private persistNextSeq(nextSeq: number): void {
    if (nextSeq <= this.persistedNextSeq) return;
    const state: SpoolState = { host: this.host, agentId: this.agentId, nextSeq };
    writeFileDurably(this.dir, STATE_FILE, Buffer.from(JSON.stringify(state) + '\n'));
    this.persistedNextSeq = nextSeq;
  }

  /** Deletes a spooled window (the oldest unless seq is given) and reports the drop. */
  private dropSpooled(reason: SpoolDropReason, seq = this.index.keys().next().value): void {
    if (seq === undefined) return;
    const size = this.index.get(seq) ?? 0;
    rmSync(this.windowPath(seq), { force: true });
    this.index.delete(seq);
    this.totalBytes -= size;
    this.dropUnwritten(seq, size, reason);
  }

  private dropUnwritten(seq: number, bytes: number, reason: SpoolDropReason): void {
    this.dropped++;
    this.droppedBy[reason]++;
    this.onDrop({ seq, bytes, reason, dropped: this.dropped });
  }
}

function windowFileName(seq: number): string {
  return `${String(seq).padStart(12, '0')}.pb`;
}

function lockSpool(dir: string): number {
  const file = path.join(dir, LOCK_FILE);
  const fd = openSync(file, 'a+', 0o600);
  if (!tryLockExclusive(fd)) {
    let holder = '';
    try {
      holder = readFileSync(file, 'utf8').trim();
    } catch {
      // The pid is only a hint for the message.
    }
    closeSync(fd);
    throw new Error(`spool ${dir} is in use by another hotloop agent${holder ? ` (pid ${holder})` : ''}; give each agent its own --spool directory`);
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`);
  return fd;
}

function readState(dir: string): SpoolState | undefined {
  const file = path.join(dir, STATE_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!isSpoolState(parsed)) {
    // Guessing an identity could reuse sequence numbers, which the collector would drop as duplicates.
    throw new Error(`${file} is not a hotloop spool state ({"host", "agentId", "nextSeq"}); remove the spool directory to start afresh`);
  }
  return parsed;
}

function isSpoolState(v: unknown): v is SpoolState {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Record<string, unknown>;
  return typeof s.host === 'string' && typeof s.agentId === 'string' && s.agentId !== '' && Number.isSafeInteger(s.nextSeq) && (s.nextSeq as number) >= 1;
}

/** Writes to a temporary file, fsyncs it, renames it into place and fsyncs the directory: after a crash the file is whole or absent. */
function writeFileDurably(dir: string, name: string, bytes: Buffer): void {
  const target = path.join(dir, name);
  const temp = target + TEMP_SUFFIX;
  let fd: number | undefined;
  try {
    fd = openSync(temp, 'w', 0o600);
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temp, target);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    rmSync(temp, { force: true });
    throw err;
  }
  const dirFd = openSync(dir, 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

function isOutOfSpace(err: unknown): boolean {
  return isErrno(err, 'ENOSPC') || isErrno(err, 'EDQUOT');
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}
