// Host preparation a tracing daemon does before loading BPF programs: tracefs
// mounted where bpftrace looks for it, and a locked-memory limit high enough
// for BPF maps on kernels that still charge them to RLIMIT_MEMLOCK.
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import {
  LibcError,
  RLIM_INFINITY,
  RLIMIT_MEMLOCK,
  getResourceLimit,
  mountFilesystem,
  setResourceLimit,
  type ResourceLimit,
} from './libc.js';

export const TRACEFS_MOUNT_POINT = '/sys/kernel/tracing';

export type TracefsState = 'already-mounted' | 'mounted' | 'mount-failed';

export interface HostPrepResult {
  tracefs: TracefsState;
  memlockBefore: ResourceLimit;
  memlockAfter: ResourceLimit;
}

/** Never throws: a host that cannot be fully prepared may still be able to profile. */
export function prepareHost(log: Logger): HostPrepResult {
  const tracefs = ensureTracefsMounted(log);
  const { before, after } = raiseMemlockLimit(log);
  return { tracefs, memlockBefore: before, memlockAfter: after };
}

export function ensureTracefsMounted(log: Logger): TracefsState {
  if (isMounted('tracefs', TRACEFS_MOUNT_POINT)) return 'already-mounted';
  try {
    mountFilesystem('nodev', TRACEFS_MOUNT_POINT, 'tracefs');
    log.info({ target: TRACEFS_MOUNT_POINT }, 'mounted tracefs');
    return 'mounted';
  } catch (err) {
    // profile and interval probes are perf events and work without tracefs; tracepoints would not.
    log.warn({ err, target: TRACEFS_MOUNT_POINT }, 'could not mount tracefs; continuing without it');
    return 'mount-failed';
  }
}

/**
 * Tries an unlimited limit first; where the hard limit cannot be raised
 * (containers, sandboxes) settles for soft = hard. Kernels >= 5.11 charge BPF
 * memory to the memory cgroup instead, so a low limit is a warning, not an error.
 */
export function raiseMemlockLimit(log: Logger): { before: ResourceLimit; after: ResourceLimit } {
  const before = getResourceLimit(RLIMIT_MEMLOCK);
  if (before.soft === RLIM_INFINITY) return { before, after: before };
  try {
    setResourceLimit(RLIMIT_MEMLOCK, { soft: RLIM_INFINITY, hard: RLIM_INFINITY });
  } catch (err) {
    if (!(err instanceof LibcError)) throw err;
    if (before.soft < before.hard) setResourceLimit(RLIMIT_MEMLOCK, { soft: before.hard, hard: before.hard });
    log.warn(
      { err, softBytes: before.hard.toString(), hardBytes: before.hard.toString() },
      'could not lift RLIMIT_MEMLOCK; raised the soft limit to the hard limit (BPF memory is charged to the memory cgroup on kernels >= 5.11)',
    );
  }
  return { before, after: getResourceLimit(RLIMIT_MEMLOCK) };
}

/** Whether /proc/self/mounts lists a filesystem of this type at target. */
export function isMounted(fstype: string, target: string, mountsText = readFileSync('/proc/self/mounts', 'utf8')): boolean {
  return mountsText.split('\n').some((line) => {
    const fields = line.split(' ');
    return fields.length >= 3 && fields[2] === fstype && unescapeMountField(fields[1] ?? '') === target;
  });
}

/** The kernel writes space, tab, newline and backslash in mount paths as octal escapes (\040 ...). */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
