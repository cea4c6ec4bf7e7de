// Checks that each test workload really behaves as its manifest entry claims, measured with real
// tools: CPU from /proc/PID/stat and /proc/PID/task/*/schedstat, bytes moved from /proc/PID/io,
// and the syscall mix from `strace -f -c`. The classifier is evaluated against these workloads,
// so they must be honest.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot, stopProcess } from './helpers/processes.js';
import { usageOf } from './helpers/proc-usage.js';
import { launchWorkload, WORKLOADS, type Workload } from './helpers/workloads.js';

const WARM_UP_MS = 500; // interpreters import their modules before the loop starts
const CPU_WINDOW_MS = 2000;
const STRACE_WINDOW_MS = 1500;

const WAIT_CALLS = ['epoll_wait', 'epoll_pwait', 'epoll_pwait2', 'poll', 'ppoll', 'select', 'pselect6'];
const READ_CALLS = ['read', 'readv', 'pread64', 'recvfrom', 'recvmsg'];
const WRITE_CALLS = ['write', 'writev', 'pwrite64', 'sendto', 'sendmsg'];

/** Syscalls each workload's hot path is known to make (at least 100 calls in the strace window). */
const SIGNATURE_SYSCALLS: Readonly<Record<string, readonly string[]>> = {
  'epoll-always-writable': ['epoll_wait', 'read'],
  'epoll-peer-closed': ['epoll_wait', 'read'],
  'poll-zero-timeout': ['poll'],
  'eagain-recv-spin': ['recvfrom'],
  'sched-yield-spin': ['sched_yield'],
  'futex-wrong-value-spin': ['futex'],
  'setimmediate-spin': ['epoll_pwait'],
  'asyncio-sleep0-spin': ['epoll_wait'],
  'devzero-copy': ['read', 'write'],
  'epoll-socket-reader': ['epoll_wait', 'read', 'write'],
  'http-server-loopback': ['epoll_pwait', 'read', 'writev'],
};

interface SyscallCount {
  calls: number;
  errors: number;
}

class SyscallProfile {
  constructor(readonly counts: ReadonlyMap<string, SyscallCount>) {}

  sum(names: readonly string[]): SyscallCount {
    const total = { calls: 0, errors: 0 };
    for (const name of names) {
      const c = this.counts.get(name);
      if (c) {
        total.calls += c.calls;
        total.errors += c.errors;
      }
    }
    return total;
  }

  get total(): number {
    return this.sum([...this.counts.keys()]).calls;
  }

  toString(): string {
    return [...this.counts].map(([name, c]) => `${name}=${c.calls}/${c.errors}err`).join(' ') || '(no syscalls)';
  }
}

/** Parses the table `strace -c` prints on detach; rows are `% seconds usecs/call calls [errors] name`. */
function parseStraceSummary(text: string): SyscallProfile {
  const counts = new Map<string, SyscallCount>();
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    const name = fields.at(-1) ?? '';
    if (!/^\d+\.\d+$/.test(fields[0] ?? '') || name === 'total') continue;
    if (fields.length === 6) counts.set(name, { calls: Number(fields[3]), errors: Number(fields[4]) });
    else if (fields.length === 5) counts.set(name, { calls: Number(fields[3]), errors: 0 });
  }
  return new SyscallProfile(counts);
}

/** Attaches strace to every thread of pid for windowMs; SIGINT makes it detach and print its summary. */
function straceSyscalls(pid: number, windowMs: number): Promise<SyscallProfile> {
  return new Promise((resolve, reject) => {
    const strace = spawn('strace', ['-f', '-c', '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let output = '';
    strace.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const detach = setTimeout(() => strace.kill('SIGINT'), windowMs);
    const giveUp = setTimeout(() => strace.kill('SIGKILL'), windowMs + 10_000);
    strace.on('error', reject);
    strace.on('close', () => {
      clearTimeout(detach);
      clearTimeout(giveUp);
      resolve(parseStraceSummary(output));
    });
  });
}

/**
 * Seconds the process's threads spent on a CPU or waiting for one in the run queue. A spinning
 * thread is always one or the other, so this shows a core's worth of demand even when other
 * processes on a shared machine hold the CPUs (/proc/PID/stat CPU time would not).
 */
function runnableSeconds(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const [onCpu, queued] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
      ns += onCpu + queued;
    } catch {
      // thread exited
    }
  }
  return ns / 1e9;
}

function bytesMoved(pid: number): { read: number; written: number } {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? NaN);
  return { read: field('rchar'), written: field('wchar') };
}

interface Observation {
  cores: number;
  runnableCores: number;
  bytesRead: number;
  bytesWritten: number;
  syscalls: SyscallProfile;
}

async function observe(pid: number): Promise<Observation> {
  await sleep(WARM_UP_MS);
  const cpu0 = usageOf(pid).cpuSeconds;
  const runnable0 = runnableSeconds(pid);
  const io0 = bytesMoved(pid);
  const t0 = performance.now();
  await sleep(CPU_WINDOW_MS);
  const seconds = (performance.now() - t0) / 1000;
  const cores = (usageOf(pid).cpuSeconds - cpu0) / seconds;
  const runnableCores = (runnableSeconds(pid) - runnable0) / seconds;
  const io1 = bytesMoved(pid);
  const syscalls = await straceSyscalls(pid, STRACE_WINDOW_MS);
  return { cores, runnableCores, bytesRead: io1.read - io0.read, bytesWritten: io1.written - io0.written, syscalls };
}

const NO_PROGRESS_BYTES = 64 * 1024; // Node's own eventfd wake-ups move a few bytes; a spin moves no payload
const REAL_IO_BYTES = 1024 * 1024;

function assertBehaviour(w: Workload, o: Observation): void {
  const s = o.syscalls;
  const waits = s.sum(WAIT_CALLS);
  const reads = s.sum(READ_CALLS);
  const transfers = s.sum([...READ_CALLS, ...WRITE_CALLS]);
  const noProgress = () => assert.ok(o.bytesRead + o.bytesWritten < NO_PROGRESS_BYTES, 'a spin must not move bytes');

  if (w.expected.verdict === 'idle') assert.ok(o.cores < 0.1 && o.runnableCores < 0.1, 'idle uses under 0.1 core');
  else assert.ok(o.runnableCores >= 0.5, 'wants at least half a core');

  for (const name of SIGNATURE_SYSCALLS[w.name] ?? []) {
    assert.ok((s.counts.get(name)?.calls ?? 0) >= 100, `hot path calls ${name}`);
  }

  switch (w.expected.kind) {
    case 'poll-no-progress':
      assert.ok(waits.calls >= 1000 && waits.calls >= 0.3 * s.total, 'wait calls return at once, many times');
      noProgress();
      break;
    case 'eagain-spin':
      assert.ok(reads.calls >= 1000 && reads.errors >= 0.9 * reads.calls, 'reads fail (EAGAIN) many times');
      assert.ok(waits.calls < 0.01 * s.total, 'no wait call between reads');
      noProgress();
      break;
    case 'yield-spin':
      assert.ok(s.sum(['sched_yield']).calls >= Math.max(1000, 0.9 * s.total), 'sched_yield dominates');
      break;
    case 'futex-spin': {
      const futex = s.sum(['futex']);
      assert.ok(futex.calls >= Math.max(1000, 0.9 * s.total), 'futex dominates');
      assert.ok(futex.errors >= 0.9 * futex.calls, 'futex waits fail (EAGAIN) at once');
      break;
    }
    case 'user-spin':
      assert.ok(s.total < 50, 'a user-space spin makes (almost) no syscalls');
      break;
    case 'runtime-spin':
      assert.ok(waits.calls >= 1000 && waits.calls >= 0.9 * s.total, 'zero-timeout wait calls dominate');
      noProgress();
      break;
    case 'compute':
      assert.ok(s.total < 1000, 'compute makes few syscalls');
      break;
    case 'io':
      assert.ok(transfers.calls >= 1000 && transfers.errors < 0.05 * transfers.calls, 'reads and writes succeed, many times');
      assert.ok(o.bytesRead >= REAL_IO_BYTES && o.bytesWritten >= REAL_IO_BYTES, 'bytes really move');
      break;
    case '':
      assert.ok(s.total < 200, 'idle makes few syscalls');
      break;
  }
}

const straceMissing = (() => {
  try {
    execFileSync('strace', ['-V'], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
})();

test('every workload has a unique name and a source that opens with the incident it stands for', () => {
  assert.equal(new Set(WORKLOADS.map((w) => w.name)).size, WORKLOADS.length);
  for (const w of WORKLOADS) {
    const source = readFileSync(path.join(repoRoot, w.file), 'utf8');
    assert.match(source, w.language === 'python' ? /^# \S/ : w.language === 'c' ? /^\/\* \S/ : /^\/\/ \S/, w.file);
  }
});

const running = new Set<ChildProcess>();
after(async () => {
  await Promise.all([...running].map((c) => stopProcess(c, 2000)));
});

describe('test workloads behave as their manifest claims', { concurrency: 2, skip: straceMissing && 'strace is not installed' }, () => {
  for (const w of WORKLOADS) {
    it(`${w.name} (${w.expected.verdict} ${w.expected.kind})`, { timeout: 30_000 }, async (t) => {
      const child = await launchWorkload(w);
      running.add(child);
      try {
        const o = await observe(child.pid!);
        const summary = `${w.name}: ${o.cores.toFixed(2)} cores (${o.runnableCores.toFixed(2)} runnable), read ${o.bytesRead} B, wrote ${o.bytesWritten} B, syscalls ${o.syscalls}`;
        t.diagnostic(summary);
        try {
          assertBehaviour(w, o);
        } catch (err) {
          (err as Error).message += `\n  observed ${summary}`;
          throw err;
        }
      } finally {
        await stopProcess(child, 2000);
        running.delete(child);
      }
    });
  }
});
