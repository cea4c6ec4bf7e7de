// Host preparation and the libc bindings behind it, on the real kernel.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { monotonicNowNanos, monotonicToUnixNanos, realtimeNowNanos } from '../agent/clock.js';
import { TRACEFS_MOUNT_POINT, isMounted, prepareHost } from '../agent/host-prep.js';
import { LibcError, RLIMIT_MEMLOCK, clockTicksPerSecond, getResourceLimit, mountFilesystem } from '../agent/libc.js';

const log = pino({ level: 'silent' });
const hostPrepModule = new URL('../agent/host-prep.js', import.meta.url).href;

function tracefsInMounts(): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === TRACEFS_MOUNT_POINT && l.split(' ')[2] === 'tracefs');
}

function hasUnshare(): boolean {
  try {
    execFileSync('unshare', ['-m', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('prepareHost', () => {
  it('leaves tracefs mounted and the memlock soft limit no lower than before', () => {
    const before = getResourceLimit(RLIMIT_MEMLOCK);
    const result = prepareHost(log);
    const after = getResourceLimit(RLIMIT_MEMLOCK);
    assert.ok(tracefsInMounts());
    assert.notEqual(result.tracefs, 'mount-failed');
    assert.deepEqual(result.memlockBefore, before);
    assert.deepEqual(result.memlockAfter, after);
    assert.ok(after.soft >= before.soft);
    assert.equal(after.soft, after.hard, 'soft limit raised as far as the hard limit allows');
  });

  it('raises a lowered memlock soft limit as far as it may', () => {
    // A child whose soft limit starts at 64 KiB, as under a stingy service manager.
    const script = `
      import { prepareHost } from ${JSON.stringify(hostPrepModule)};
      import { pino } from 'pino';
      const { memlockBefore, memlockAfter } = prepareHost(pino({ level: 'silent' }));
      console.log(JSON.stringify({ before: String(memlockBefore.soft), soft: String(memlockAfter.soft), hard: String(memlockAfter.hard) }));
    `;
    const out = execFileSync('sh', ['-c', 'ulimit -S -l 64 && exec "$0" --input-type=module -e "$1"', process.execPath, script], {
      cwd: new URL('../../', import.meta.url),
      encoding: 'utf8',
      timeout: 30_000,
    });
    const limits = JSON.parse(out) as { before: string; soft: string; hard: string };
    assert.equal(limits.before, String(64 * 1024));
    assert.ok(BigInt(limits.soft) > BigInt(limits.before));
    assert.equal(limits.soft, limits.hard);
  });

  it('mounts tracefs where it is missing', { skip: hasUnshare() ? false : 'unshare(1) cannot create a mount namespace here' }, () => {
    // A private mount namespace without tracefs, so the host's own mount is not touched.
    const script = `
      import { ensureTracefsMounted, isMounted } from ${JSON.stringify(hostPrepModule)};
      import { pino } from 'pino';
      const before = isMounted('tracefs', '/sys/kernel/tracing');
      const state = ensureTracefsMounted(pino({ level: 'silent' }));
      console.log(JSON.stringify({ before, state, after: isMounted('tracefs', '/sys/kernel/tracing') }));
    `;
    const out = execFileSync(
      'unshare',
      ['-m', '--propagation', 'private', 'sh', '-c', `umount ${TRACEFS_MOUNT_POINT} 2>/dev/null; exec "$0" --input-type=module -e "$1"`, process.execPath, script],
      { cwd: new URL('../../', import.meta.url), encoding: 'utf8', timeout: 30_000 },
    );
    assert.deepEqual(JSON.parse(out), { before: false, state: 'mounted', after: true });
    assert.ok(tracefsInMounts(), "the host's tracefs is still mounted");
  });
});

describe('isMounted', () => {
  it('reads /proc/self/mounts fields, octal escapes included', () => {
    const mounts = 'nodev /sys/kernel/tracing tracefs rw,relatime 0 0\nnone /mnt/a\\040b tmpfs rw 0 0\n';
    assert.equal(isMounted('tracefs', '/sys/kernel/tracing', mounts), true);
    assert.equal(isMounted('tmpfs', '/mnt/a b', mounts), true);
    assert.equal(isMounted('tracefs', '/sys/kernel/debug/tracing', mounts), false);
    assert.equal(isMounted('debugfs', '/sys/kernel/tracing', mounts), false);
  });
});

describe('libc bindings', () => {
  it('reports errno from a failing call', () => {
    assert.throws(
      () => mountFilesystem('nodev', '/nonexistent/hotloop-test', 'tracefs'),
      (err: unknown) => err instanceof LibcError && err.call === 'mount' && err.errno === 2 && /No such file or directory/.test(err.message),
    );
  });

  it('reads USER_HZ', () => {
    assert.equal(clockTicksPerSecond(), Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()));
  });
});

describe('clock', () => {
  it('reads the same monotonic clock as Node', () => {
    const a = monotonicNowNanos();
    const node = process.hrtime.bigint();
    const b = monotonicNowNanos();
    assert.ok(a <= node && node <= b);
  });

  it('maps monotonic time to wall-clock time', () => {
    const realBefore = realtimeNowNanos();
    const mapped = monotonicToUnixNanos(monotonicNowNanos());
    const realAfter = realtimeNowNanos();
    // The mapping is exact up to the clock reads it takes, which happen between these two reads.
    assert.ok(mapped >= realBefore - 1_000_000n && mapped <= realAfter + 1_000_000n);
    const msNow = BigInt(Date.now());
    assert.ok(realAfter / 1_000_000n <= msNow);
  });
});
