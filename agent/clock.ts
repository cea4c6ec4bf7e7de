// Maps CLOCK_MONOTONIC timestamps (what bpftrace's nsecs and perf -k mono
// report) to Unix wall-clock time.
import { CLOCK_MONOTONIC, CLOCK_REALTIME, clockGettimeNanos } from './libc.js';

export function monotonicNowNanos(): bigint {
  return clockGettimeNanos(CLOCK_MONOTONIC);
}

export function realtimeNowNanos(): bigint {
  return clockGettimeNanos(CLOCK_REALTIME);
}

/**
 * The offset is measured afresh on every call, so the mapping follows NTP
 * steps; reading the realtime clock between two monotonic reads and taking
 * their midpoint keeps the error to half a clock read.
 */
export function monotonicToUnixNanos(monoNs: bigint): bigint {
  const before = monotonicNowNanos();
  const real = realtimeNowNanos();
  const after = monotonicNowNanos();
  const offset = real - (before + after) / 2n;
  return monoNs + offset;
}
