// The few libc calls the agent needs that Node does not expose (resource
// limits, mount, clocks by id, sysconf, flock, perf events), bound through koffi. Failures throw a
// LibcError carrying errno, so callers can decide what is fatal.
import koffi from 'koffi';

export const RLIMIT_MEMLOCK = 8;
/** RLIM_INFINITY on Linux: all bits set. */
export const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;
export const CLOCK_REALTIME = 0;
export const CLOCK_MONOTONIC = 1;
const SC_CLK_TCK = 2;
const F_SETPIPE_SZ = 1031;
const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = 11;
const ENOSYS = 38;

export interface ResourceLimit {
  soft: bigint;
  hard: bigint;
}

export class LibcError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call} failed: ${describeErrno(errno)} (errno ${errno})`);
    this.name = 'LibcError';
  }
}

interface RlimitStruct {
  rlim_cur: number | bigint;
  rlim_max: number | bigint;
}

interface TimespecStruct {
  tv_sec: number | bigint;
  tv_nsec: number | bigint;
}

interface LibcBindings {
  getrlimit(resource: number, out: Partial<RlimitStruct>): number;
  setrlimit(resource: number, limit: RlimitStruct): number;
  clockGettime(clockId: number, out: Partial<TimespecStruct>): number;
  mount(source: string, target: string, fstype: string, flags: number, data: null): number;
  strerror(errno: number): string;
  sysconf(name: number): number;
  mkfifo(path: string, mode: number): number;
  /** fcntl(fd, cmd, int arg): koffi takes a variadic argument as a type and a value. */
  fcntlInt(fd: number, cmd: number, argType: 'int', arg: number): number;
  flock(fd: number, operation: number): number;
  /** syscall(SYS_perf_event_open, attr, pid, cpu, group_fd, flags); glibc has no wrapper. */
  perfEventOpen(
    nr: number,
    attrType: 'void *', attr: Buffer,
    pidType: 'int', pid: number,
    cpuType: 'int', cpu: number,
    groupFdType: 'int', groupFd: number,
    flagsType: 'unsigned long', flags: number,
  ): number;
  read(fd: number, buf: Buffer, count: number): number;
  close(fd: number): number;
}

let bindings: LibcBindings | undefined;

// Bound on first use, so merely importing this module never loads libc.
function libc(): LibcBindings {
  if (bindings) return bindings;
  const lib = koffi.load('libc.so.6');
  const rlimit = koffi.struct('hotloop_rlimit', { rlim_cur: 'uint64_t', rlim_max: 'uint64_t' });
  const timespec = koffi.struct('hotloop_timespec', { tv_sec: 'int64_t', tv_nsec: 'int64_t' });
  bindings = {
    getrlimit: lib.func('getrlimit', 'int', ['int', koffi.out(koffi.pointer(rlimit))]),
    setrlimit: lib.func('setrlimit', 'int', ['int', koffi.pointer(rlimit)]),
    clockGettime: lib.func('clock_gettime', 'int', ['int', koffi.out(koffi.pointer(timespec))]),
    mount: lib.func('mount', 'int', ['str', 'str', 'str', 'unsigned long', 'void *']),
    strerror: lib.func('strerror', 'str', ['int']),
    sysconf: lib.func('sysconf', 'long', ['int']),
    mkfifo: lib.func('mkfifo', 'int', ['str', 'uint32_t']),
    fcntlInt: lib.func('fcntl', 'int', ['int', 'int', '...']),
    flock: lib.func('flock', 'int', ['int', 'int']),
    perfEventOpen: lib.func('syscall', 'long', ['long', '...']),
    read: lib.func('read', 'long', ['int', 'void *', 'size_t']),
    close: lib.func('close', 'int', ['int']),
  };
  return bindings;
}

function describeErrno(errno: number): string {
  return libc().strerror(errno);
}

function check(call: string, rc: number): void {
  if (rc !== 0) throw new LibcError(call, koffi.errno());
}

export function getResourceLimit(resource: number): ResourceLimit {
  const out: Partial<RlimitStruct> = {};
  check('getrlimit', libc().getrlimit(resource, out));
  return { soft: BigInt(out.rlim_cur ?? 0), hard: BigInt(out.rlim_max ?? 0) };
}

export function setResourceLimit(resource: number, limit: ResourceLimit): void {
  check('setrlimit', libc().setrlimit(resource, { rlim_cur: limit.soft, rlim_max: limit.hard }));
}

/** clock_gettime(clockId) in nanoseconds. */
export function clockGettimeNanos(clockId: number): bigint {
  const out: Partial<TimespecStruct> = {};
  check('clock_gettime', libc().clockGettime(clockId, out));
  return BigInt(out.tv_sec ?? 0) * 1_000_000_000n + BigInt(out.tv_nsec ?? 0);
}

/** mount(2) with no filesystem-specific data. */
export function mountFilesystem(source: string, target: string, fstype: string, flags = 0): void {
  check('mount', libc().mount(source, target, fstype, flags, null));
}

/** mkfifo(3): creates a named pipe. */
export function makeFifo(path: string, mode = 0o600): void {
  check('mkfifo', libc().mkfifo(path, mode));
}

/** Sets a pipe's capacity (fcntl F_SETPIPE_SZ); returns the capacity the kernel granted. */
export function setPipeCapacity(fd: number, bytes: number): number {
  const granted = libc().fcntlInt(fd, F_SETPIPE_SZ, 'int', bytes);
  if (granted < 0) throw new LibcError('fcntl(F_SETPIPE_SZ)', koffi.errno());
  return granted;
}

/**
 * flock(fd, LOCK_EX | LOCK_NB): true once this open file holds the lock, false
 * while another holds it. The kernel drops the lock when the file is closed or
 * its process dies, so a killed holder never leaves a stale lock behind.
 */
export function tryLockExclusive(fd: number): boolean {
  if (libc().flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
  const errno = koffi.errno();
  if (errno === EWOULDBLOCK) return false;
  throw new LibcError('flock', errno);
}

/** perf_event_open(2)'s syscall number per architecture. */
const SYS_PERF_EVENT_OPEN: Partial<Record<NodeJS.Architecture, number>> = { x64: 298, arm64: 241 };

/** perf_event_open(2): returns the new event's fd. `attr` is a struct perf_event_attr laid out by the caller. */
export function perfEventOpen(attr: Buffer, pid: number, cpu: number, groupFd: number, flags: number): number {
  const nr = SYS_PERF_EVENT_OPEN[process.arch];
  if (nr === undefined) throw new LibcError('perf_event_open', ENOSYS);
  const fd = libc().perfEventOpen(nr, 'void *', attr, 'int', pid, 'int', cpu, 'int', groupFd, 'unsigned long', flags);
  if (fd < 0) throw new LibcError('perf_event_open', koffi.errno());
  return fd;
}

/** read(2) on a descriptor Node does not own (a perf event); returns the bytes read. */
export function readFd(fd: number, buf: Buffer): number {
  const n = libc().read(fd, buf, buf.length);
  if (n < 0) throw new LibcError('read', koffi.errno());
  return n;
}

/** close(2) on a descriptor Node does not own. */
export function closeFd(fd: number): void {
  check('close', libc().close(fd));
}

/** Clock ticks per second (USER_HZ), the unit of /proc/<pid>/stat CPU times. */
export function clockTicksPerSecond(): number {
  const ticks = libc().sysconf(SC_CLK_TCK);
  if (ticks <= 0) throw new LibcError('sysconf(_SC_CLK_TCK)', koffi.errno());
  return ticks;
}
