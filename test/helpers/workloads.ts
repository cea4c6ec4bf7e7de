// The catalogue of test workloads (busy-loop pathologies and their legitimate counterparts) and a
// launcher that runs one so that the returned pid is the process burning the CPU.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './processes.js';

export type ExpectedVerdict =
  | { verdict: 'busy-loop'; kind: 'poll-no-progress' | 'eagain-spin' | 'yield-spin' | 'futex-spin' | 'user-spin' | 'runtime-spin' }
  | { verdict: 'working'; kind: 'compute' | 'io' }
  | { verdict: 'idle'; kind: '' };

export interface Workload {
  name: string;
  language: 'c' | 'node' | 'python';
  /** Path relative to the repo root. */
  file: string;
  expected: ExpectedVerdict;
  description: string;
}

const workload = (name: string, language: Workload['language'], ext: string, expected: ExpectedVerdict, description: string): Workload => ({
  name,
  language,
  file: `test/workloads/${name}.${ext}`,
  expected,
  description,
});

export const WORKLOADS: readonly Workload[] = [
  workload('epoll-always-writable', 'c', 'c', { verdict: 'busy-loop', kind: 'poll-no-progress' },
    'level-triggered epoll on EPOLLOUT of an idle socket; the handler reads and gets EAGAIN'),
  workload('epoll-peer-closed', 'c', 'c', { verdict: 'busy-loop', kind: 'poll-no-progress' },
    'level-triggered epoll on a peer-closed socket (EPOLLIN|EPOLLRDHUP|EPOLLHUP) never closed; reads return 0'),
  workload('poll-zero-timeout', 'c', 'c', { verdict: 'busy-loop', kind: 'poll-no-progress' },
    'poll(fds, 2, 0) in a loop, always returning 0'),
  workload('eagain-recv-spin', 'c', 'c', { verdict: 'busy-loop', kind: 'eagain-spin' },
    'non-blocking recv on an empty socket in a loop, always EAGAIN, no wait call'),
  workload('sched-yield-spin', 'c', 'c', { verdict: 'busy-loop', kind: 'yield-spin' },
    'sched_yield() loop waiting on a flag that never flips'),
  workload('futex-wrong-value-spin', 'c', 'c', { verdict: 'busy-loop', kind: 'futex-spin' },
    'FUTEX_WAIT with a stale expected value, returning EAGAIN at once, in a loop'),
  workload('pause-flag-spin', 'c', 'c', { verdict: 'busy-loop', kind: 'user-spin' },
    'while (!flag) pause; no syscalls, one or two hot instruction addresses'),
  workload('setimmediate-spin', 'node', 'mjs', { verdict: 'busy-loop', kind: 'runtime-spin' },
    'Node setImmediate re-arming itself while a queue stays empty; epoll_pwait(..., 0) returns 0'),
  workload('asyncio-sleep0-spin', 'python', 'py', { verdict: 'busy-loop', kind: 'runtime-spin' },
    'Python asyncio loop of await asyncio.sleep(0); epoll_wait(..., 0) returns 0'),
  workload('matrix-multiply', 'c', 'c', { verdict: 'working', kind: 'compute' },
    'dense double-precision matrix multiply; no syscalls'),
  workload('sha256-hashing', 'node', 'mjs', { verdict: 'working', kind: 'compute' },
    'node:crypto SHA-256 over a 1 MiB buffer in a loop'),
  workload('gzip-compression', 'node', 'mjs', { verdict: 'working', kind: 'compute' },
    'node:zlib gzipSync over log-like text in a loop'),
  workload('prime-sieve', 'python', 'py', { verdict: 'working', kind: 'compute' },
    'pure-Python sieve of Eratosthenes; interpreter frames, no syscalls'),
  workload('devzero-copy', 'c', 'c', { verdict: 'working', kind: 'io' },
    '4 KiB read from /dev/zero, write to /dev/null; every call moves bytes'),
  workload('epoll-socket-reader', 'c', 'c', { verdict: 'working', kind: 'io' },
    'epoll_wait with real readiness on a socket a producer thread keeps filling; reads return data'),
  workload('http-server-loopback', 'node', 'mjs', { verdict: 'working', kind: 'io' },
    'Node http server on 127.0.0.1 with an in-process keep-alive client; epoll_pwait(..., 0) returns events'),
  workload('idle-sleep', 'c', 'c', { verdict: 'idle', kind: '' },
    'nanosleep 100 ms in a loop'),
  workload('idle-timer', 'node', 'mjs', { verdict: 'idle', kind: '' },
    'Node setInterval every 100 ms; epoll_pwait with a real timeout'),
];

const run = promisify(execFile);

let binDir: string | undefined;
const compiled = new Map<string, Promise<string>>();
let python: Promise<string> | undefined;

function binaryDir(): string {
  if (!binDir) {
    const dir = mkdtempSync(path.join(tmpdir(), 'hotloop-workloads-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    binDir = dir;
  }
  return binDir;
}

/** Compiles each C workload once per process; concurrent callers share the same build. */
function compiledBinary(w: Workload): Promise<string> {
  let bin = compiled.get(w.name);
  if (!bin) {
    const out = path.join(binaryDir(), w.name);
    bin = run('gcc', ['-O1', '-g', '-fno-omit-frame-pointer', '-pthread', '-o', out, path.join(repoRoot, w.file)]).then(() => out);
    compiled.set(w.name, bin);
  }
  return bin;
}

/** The real interpreter binary: `python3` on PATH may be a shell shim (pyenv), which would not be the busy pid at first. */
function pythonBinary(): Promise<string> {
  python ??= run('python3', ['-c', 'import sys; print(sys.executable)']).then(({ stdout }) => stdout.trim());
  return python;
}

async function commandFor(w: Workload): Promise<[string, string[]]> {
  const source = path.join(repoRoot, w.file);
  switch (w.language) {
    case 'c':
      return [await compiledBinary(w), []];
    case 'node':
      return [process.execPath, [source]];
    case 'python':
      return [await pythonBinary(), [source]];
  }
}

/** Compiles if needed, spawns the workload with stdio ignored, and resolves once it is running. */
export async function launchWorkload(w: Workload): Promise<ChildProcess> {
  const [command, args] = await commandFor(w);
  const child = spawn(command, args, { stdio: 'ignore', cwd: repoRoot });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  return child;
}
