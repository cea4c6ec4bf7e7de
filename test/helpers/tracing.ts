// Tests that open tracepoints directly (not through a started agent) prepare
// the host the way the agent does: tracefs is not mounted on a fresh machine.
import { pino } from 'pino';
import { ensureTracefsMounted } from '../../agent/host-prep.js';

export function mountTracefs(): void {
  const state = ensureTracefsMounted(pino({ level: 'silent' }));
  if (state === 'mount-failed') throw new Error('tracefs is not mounted at /sys/kernel/tracing and mounting it failed');
}
