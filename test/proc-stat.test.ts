import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { containerIdFromCgroup, parseCgroup, parseCmdline, parseProcStat } from '../agent/proc-stat.js';

test('parseProcStat reads comm with spaces and parentheses, and the CPU tick fields', () => {
  const line =
    '4242 (my (weird) proc) R 1 4242 4242 0 -1 4194560 120 0 0 0 731 29 5 3 20 0 1 0 987654 4096000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0';
  const s = parseProcStat(line);
  assert.deepEqual(s, { pid: 4242, comm: 'my (weird) proc', state: 'R', utime: 731, stime: 29, cutime: 5, cstime: 3, startTime: 987654 });
});

test('parseProcStat reads this process from the real /proc', () => {
  const s = parseProcStat(readFileSync('/proc/self/stat', 'utf8'));
  assert.ok(s);
  assert.equal(s.pid > 0, true);
  assert.equal(s.comm, readFileSync('/proc/self/comm', 'utf8').trim());
});

test('parseProcStat rejects garbage', () => {
  assert.equal(parseProcStat(''), null);
  assert.equal(parseProcStat('12 noparens R 1'), null);
  assert.equal(parseProcStat('12 (x) R'), null);
});

test('parseCmdline joins NUL-separated arguments and bounds the length', () => {
  assert.equal(parseCmdline('node\0server.js\0--port\x008080\0'), 'node server.js --port 8080');
  assert.equal(parseCmdline('a'.repeat(10), 4), 'aaaa');
  assert.equal(parseCmdline(''), '');
});

test('parseCgroup prefers the v2 line; containerIdFromCgroup finds runtime ids', () => {
  const id = 'a'.repeat(12) + '0123456789abcdef'.repeat(3) + 'b'.repeat(4);
  assert.equal(id.length, 64);
  assert.equal(parseCgroup('12:cpu:/old\n0::/system.slice/docker-' + id + '.scope\n'), `/system.slice/docker-${id}.scope`);
  assert.equal(parseCgroup('3:memory:/docker/' + id + '\n'), `/docker/${id}`);
  assert.equal(containerIdFromCgroup(`/system.slice/docker-${id}.scope`), id);
  assert.equal(containerIdFromCgroup(`/docker/${id}`), id);
  assert.equal(containerIdFromCgroup(`/kubepods.slice/kubepods-burstable.slice/cri-containerd-${id}.scope`), id);
  assert.equal(containerIdFromCgroup(`/machine.slice/libpod-${id}.scope/container`), id);
  assert.equal(containerIdFromCgroup('/user.slice/user-0.slice/session-1.scope'), '');
});
