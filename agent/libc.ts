// The few libc calls the agent needs that Node does not expose (resource
// limits, mount, clocks by id, sysconf), bound through koffi. Failures throw a
// LibcError carrying errno, so callers can decide what is fatal.
import koffi from 'koffi';

export const RLIMIT_MEMLOCK = 8;
/** RLIM_INFINITY on Linux: all bits set. */
export const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;
export const CLOCK_REALTIME = 0;
export const CLOCK_MONOTONIC = 1;
const SC_CLK_TCK = 2;
const F_SETPIPE_SZ = 1031;

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

/** Clock ticks per second (USER_HZ), the unit of /proc/<pid>/stat CPU times. */
export function clockTicksPerSecond(): number {
  const ticks = libc().sysconf(SC_CLK_TCK);
  if (ticks <= 0) throw new LibcError('sysconf(_SC_CLK_TCK)', koffi.errno());
  return ticks;
}
