// The capture backends for real: bpftrace and perf sampling a real busy
// process, restarted after a real SIGKILL, and backend selection.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino, type Logger } from 'pino';
import { BpftraceCapture } from '../agent/bpftrace-capture.js';
import { selectCaptureBackend, type SupervisedCaptureBackend } from '../agent/capture-select.js';
import type { CapturedWindow } from '../agent/capture-types.js';
import { monotonicNowNanos } from '../agent/clock.js';
import { PerfCapture } from '../agent/perf-capture.js';
import { compileC, stopProcess, tempDir, waitFor } from './helpers/processes.js';

const SPIN_SOURCE = `
#include <stdint.h>
volatile uint64_t sink;
__attribute__((noinline)) void capture_test_spin(void) { for (;;) sink++; }
int main(void) { capture_test_spin(); return 0; }
`;
const FAST_BACKOFF = { initialMs: 100, maxMs: 1_000 };
const LIMIT_MS = 60_000;

interface LogCollector {
  log: Logger;
  messages: () => string[];
}

function collectLogs(): LogCollector {
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
  return { log, messages: () => lines.map((l) => (JSON.parse(l) as { msg: string }).msg) };
}

/** Starts the backend and records its windows; the caller stops it. */
function recordWindows(backend: SupervisedCaptureBackend): CapturedWindow[] {
  const windows: CapturedWindow[] = [];
  backend.start((w) => windows.push(w));
  return windows;
}

const windowCount = (windows: CapturedWindow[], n: number) => () => (windows.length >= n ? true : undefined);

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('capture backends on a real busy process', { timeout: 300_000 }, () => {
  let spin: ChildProcess;
  let spinPid: number;

  before(() => {
    spin = spawn(compileC(SPIN_SOURCE, 'capture_test_spin'), [], { stdio: 'ignore' });
    assert.ok(spin.pid);
    spinPid = spin.pid;
  });

  after(async () => {
    await stopProcess(spin, 2_000);
  });

  for (const make of [
    (log: Logger) => new BpftraceCapture({ frequencyHz: 19, windowSeconds: 1, log, backoff: FAST_BACKOFF }),
    (log: Logger) => new PerfCapture({ frequencyHz: 19, windowSeconds: 1, log, backoff: FAST_BACKOFF }),
  ]) {
    const backendName = make(pino({ level: 'silent' })).name;

    it(`${backendName}: delivers windows holding the busy process's stacks`, async () => {
      const { log } = collectLogs();
      const startedMono = monotonicNowNanos();
      const backend = make(log);
      const windows = recordWindows(backend);
      try {
        await waitFor('3 windows', windowCount(windows, 3), LIMIT_MS);
      } finally {
        await backend.stop();
      }
      const received = monotonicNowNanos();
      for (let i = 0; i < windows.length; i++) {
        const end = windows[i]!.endMonotonicNs;
        assert.ok(end > startedMono && end <= received, `window ${i} ends inside the test's run (${end})`);
        if (i > 0) assert.ok(end > windows[i - 1]!.endMonotonicNs);
      }
      const spinStacks = windows.flatMap((w) => w.stacks).filter((s) => s.pid === spinPid);
      assert.ok(spinStacks.length > 0, 'busy process sampled');
      assert.ok(spinStacks.every((s) => s.tid === spinPid && s.count > 0 && s.user.length + s.kernel.length > 0));
      assert.ok(spinStacks.some((s) => s.user.length > 0));
      assert.ok(windows.some((w) => w.threadNames.get(spinPid) === 'capture_test_sp'), 'comm, cut to 15 characters');
      assert.ok(windows.flatMap((w) => w.stacks).every((s) => s.pid !== 0), 'idle task skipped');
    });

    it(`${backendName}: restarts its child after SIGKILL and keeps delivering windows`, async () => {
      const { log, messages } = collectLogs();
      const backend = make(log);
      const windows = recordWindows(backend);
      try {
        await waitFor('a first window', windowCount(windows, 1), LIMIT_MS);
        const firstPid = backend.childPid;
        assert.ok(firstPid);
        process.kill(firstPid, 'SIGKILL');
        await waitFor('the child to be restarted', () => (backend.restarts === 1 && backend.childPid !== undefined && backend.childPid !== firstPid ? true : undefined), LIMIT_MS);
        const seen = windows.length;
        await waitFor('windows from the new child', windowCount(windows, seen + 2), LIMIT_MS);
        assert.ok(windows.slice(seen).some((w) => w.stacks.some((s) => s.pid === spinPid)));
        assert.ok(messages().includes('capture child ended; restarting'));
      } finally {
        await backend.stop();
      }
      assert.equal(backend.childPid, undefined);
    });
  }

  it('bpftrace: stop() resolves once the child has exited', async () => {
    const backend = new BpftraceCapture({ frequencyHz: 19, windowSeconds: 1, log: pino({ level: 'silent' }) });
    const windows = recordWindows(backend);
    await waitFor('a first window', windowCount(windows, 1), LIMIT_MS);
    const pid = backend.childPid;
    assert.ok(pid && isAlive(pid));
    await backend.stop();
    assert.equal(isAlive(pid), false);
  });

  it('bpftrace: is replaced, not counted as restarted, once its stack-id map has taken enough stacks', async () => {
    const { log } = collectLogs();
    const backend = new BpftraceCapture({ frequencyHz: 19, windowSeconds: 1, log, recycleAfterStackKeys: 1 });
    const windows = recordWindows(backend);
    try {
      await waitFor('a window with stacks', () => (windows.some((w) => w.stacks.length > 0) ? true : undefined), LIMIT_MS);
      const firstPid = backend.childPid;
      await waitFor('a replacement child', () => (backend.childPid !== undefined && backend.childPid !== firstPid ? true : undefined), LIMIT_MS);
      const seen = windows.length;
      await waitFor('a window from the replacement', windowCount(windows, seen + 1), LIMIT_MS);
      assert.equal(backend.restarts, 0);
    } finally {
      await backend.stop();
    }
  });
});

describe('bpftrace capture on garbage output', { timeout: 60_000 }, () => {
  // Real bpftrace cannot be made to print garbage, so a stand-in script does.
  it('logs it and restarts the child with backoff, never delivering a window', async () => {
    const standIn = path.join(tempDir('garbage'), 'bpftrace');
    writeFileSync(standIn, '#!/bin/sh\necho "ERROR: not json at all"\necho \'{"type": "printf", "data": "hotloop_window_end 5\\n"}\'\nexec sleep 60\n');
    chmodSync(standIn, 0o755);
    const { log, messages } = collectLogs();
    const backend = new BpftraceCapture({ frequencyHz: 19, windowSeconds: 1, log, bpftracePath: standIn, backoff: { initialMs: 50, maxMs: 200 } });
    const windows = recordWindows(backend);
    try {
      await waitFor('two restarts', () => (backend.restarts >= 2 ? true : undefined), 30_000);
    } finally {
      await backend.stop();
    }
    assert.deepEqual(windows, [], 'the window-end line after the garbage is not trusted');
    assert.ok(messages().includes('unparseable bpftrace output; restarting bpftrace'));
  });
});

describe('selectCaptureBackend', { timeout: 120_000 }, () => {
  const log = pino({ level: 'silent' });

  it('prefers bpftrace and honours a preference for perf', () => {
    assert.equal(selectCaptureBackend({ frequencyHz: 19, windowSeconds: 10, log }).name, 'bpftrace');
    assert.equal(selectCaptureBackend({ frequencyHz: 19, windowSeconds: 10, log, prefer: 'perf' }).name, 'perf');
  });

  it('says what to install when neither tool is there', () => {
    const savedPath = process.env.PATH;
    process.env.PATH = tempDir('empty-path');
    try {
      assert.throws(
        () => selectCaptureBackend({ frequencyHz: 19, windowSeconds: 10, log }),
        (err: Error) => /bpftrace. is not on PATH/.test(err.message) && /apt-get install bpftrace/.test(err.message) && /apt-get install linux-perf/.test(err.message),
      );
    } finally {
      process.env.PATH = savedPath;
    }
  });

  it('refuses settings that are not integers in range before spawning anything', () => {
    for (const bad of [
      { frequencyHz: 0, windowSeconds: 10 },
      { frequencyHz: 1001, windowSeconds: 10 },
      { frequencyHz: 19.5, windowSeconds: 10 },
      { frequencyHz: Number.NaN, windowSeconds: 10 },
      { frequencyHz: 19, windowSeconds: 0 },
      { frequencyHz: 19, windowSeconds: 3601 },
      { frequencyHz: '19; system("id")' as unknown as number, windowSeconds: 10 },
    ]) {
      assert.throws(() => selectCaptureBackend({ ...bad, log }), RangeError, JSON.stringify(bad));
      assert.throws(() => new BpftraceCapture({ ...bad, log }), RangeError);
      assert.throws(() => new PerfCapture({ ...bad, log }), RangeError);
    }
  });
});
