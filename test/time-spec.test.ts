import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatUnixNanos, parseTimeSpec } from '../cli/time-spec.js';

const now = Date.parse('2026-11-22T10:00:00Z');

test('relative, now, unix seconds and RFC 3339 all map to unix nanoseconds', () => {
  assert.equal(parseTimeSpec('now', now), BigInt(now) * 1_000_000n);
  assert.equal(formatUnixNanos(parseTimeSpec('-5m', now)), '2026-11-22T09:55:00.000Z');
  assert.equal(formatUnixNanos(parseTimeSpec('-1h', now)), '2026-11-22T09:00:00.000Z');
  assert.equal(formatUnixNanos(parseTimeSpec('-2d', now)), '2026-11-20T10:00:00.000Z');
  assert.equal(parseTimeSpec('1763805600', now), 1763805600_000_000_000n);
  assert.equal(parseTimeSpec('1763805600.25', now), 1763805600_250_000_000n);
  assert.equal(formatUnixNanos(parseTimeSpec('2026-11-22T11:30:00+01:00', now)), '2026-11-22T10:30:00.000Z');
});

test('anything else is refused with the accepted forms', () => {
  for (const bad of ['yesterday', '-5x', '5m', '', '2026-13-99T99:00:00Z']) {
    assert.throws(() => parseTimeSpec(bad, now), /RFC 3339.*relative/);
  }
});
