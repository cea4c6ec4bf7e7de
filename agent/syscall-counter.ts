// Counts one process's syscalls with perf_event_open on the
// raw_syscalls:sys_enter tracepoint: a counter the kernel increments, no
// samples, nothing to read out but one number per thread. A per-task perf
// event counts only the thread it was opened on, so there is one event per
// thread, and threads are re-listed as the process starts and ends them.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { LibcError, closeFd, perfEventOpen, readFd } from './libc.js';

const PERF_TYPE_TRACEPOINT = 2;
/** PERF_ATTR_SIZE_VER0: every field a counting tracepoint event needs, and accepted by every kernel. */
const PERF_ATTR_SIZE = 64;
const PERF_FLAG_FD_CLOEXEC = 8;
const ANY_CPU = -1;
const NO_GROUP = -1;
const ESRCH = 3;

/** Where tracefs may be mounted; host-prep mounts the first one when neither is. */
export const TRACEFS_ROOTS: readonly string[] = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];

/** The id of raw_syscalls:sys_enter, or null when no tracefs exposes it (not mounted, or no syscall tracepoints). */
export function syscallEnterTracepointId(roots: readonly string[] = TRACEFS_ROOTS): number | null {
  for (const root of roots) {
    try {
      const id = Number(readFileSync(path.join(root, 'events/raw_syscalls/sys_enter/id'), 'utf8').trim());
      if (Number.isInteger(id) && id > 0) return id;
    } catch {
      // not mounted here
    }
  }
  return null;
}

/** A counting (not sampling) perf_event_attr for one tracepoint: sample_period 0, no sample_type, enabled at once. */
function countingAttr(tracepointId: number): Buffer {
  const attr = Buffer.alloc(PERF_ATTR_SIZE);
  attr.writeUInt32LE(PERF_TYPE_TRACEPOINT, 0); // type
  attr.writeUInt32LE(PERF_ATTR_SIZE, 4); // size
  attr.writeBigUInt64LE(BigInt(tracepointId), 8); // config
  return attr;
}

function listThreads(procRoot: string, pid: number): number[] {
  try {
    return readdirSync(path.join(procRoot, String(pid), 'task')).map(Number).filter((tid) => Number.isInteger(tid) && tid > 0);
  } catch {
    return []; // the process is gone
  }
}

export class SyscallCounter {
  /** tid → perf event fd. */
  private readonly events = new Map<number, number>();
  /** Final counts of threads that ended, read before their event was closed. */
  private endedThreadsCount = 0;
  private readonly valueBuffer = Buffer.alloc(8);
  private readonly attr: Buffer;

  private constructor(
    readonly pid: number,
    tracepointId: number,
    private readonly procRoot: string,
  ) {
    this.attr = countingAttr(tracepointId);
  }

  /**
   * Starts counting every current thread of pid. Throws LibcError when the
   * kernel refuses an event (no tracepoint support, no permission, out of
   * descriptors); a process that is gone simply counts nothing.
   */
  static open(pid: number, tracepointId: number, procRoot = '/proc'): SyscallCounter {
    const counter = new SyscallCounter(pid, tracepointId, procRoot);
    try {
      counter.refreshThreads();
    } catch (err) {
      counter.close();
      throw err;
    }
    return counter;
  }

  /** Threads being counted right now. */
  get threads(): number {
    return this.events.size;
  }

  /** Counts threads started since the last call; folds in and closes the events of threads that ended. */
  refreshThreads(): void {
    const live = new Set(listThreads(this.procRoot, this.pid));
    for (const [tid, fd] of this.events) {
      if (live.has(tid)) continue;
      // A perf event keeps its count after its task exits.
      this.endedThreadsCount += this.readEvent(fd);
      this.events.delete(tid);
      closeFd(fd);
    }
    for (const tid of live) {
      if (this.events.has(tid)) continue;
      try {
        this.events.set(tid, perfEventOpen(this.attr, tid, ANY_CPU, NO_GROUP, PERF_FLAG_FD_CLOEXEC));
      } catch (err) {
        // A thread that ended between listing and opening is not an error.
        if (!(err instanceof LibcError && err.errno === ESRCH)) throw err;
      }
    }
  }

  /** Syscalls the process's counted threads have entered since counting began. */
  count(): number {
    let total = this.endedThreadsCount;
    for (const fd of this.events.values()) total += this.readEvent(fd);
    return total;
  }

  /** Closes every event; safe to call more than once. */
  close(): void {
    for (const fd of this.events.values()) {
      try {
        closeFd(fd);
      } catch {
        // nothing more to release
      }
    }
    this.events.clear();
  }

  private readEvent(fd: number): number {
    const n = readFd(fd, this.valueBuffer);
    return n === this.valueBuffer.length ? Number(this.valueBuffer.readBigUInt64LE(0)) : 0;
  }
}
