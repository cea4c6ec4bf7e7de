// Sampling settings shared by the capture backends. They end up as arguments
// of a privileged child process, so they are checked to be plain integers in
// sane ranges before anything is spawned.
import { CAPTURE_LIMITS } from '../proto/capture-limits.js';

export interface CaptureSettings {
  /** Samples per second per CPU. */
  frequencyHz: number;
  /** Seconds per window readout. */
  windowSeconds: number;
  /** Only this process (an on-demand capture); 0 or absent = every process. */
  pid?: number;
}

export const FREQUENCY_RANGE_HZ = { min: 1, max: 1000 } as const;
export const WINDOW_RANGE_SECONDS = { min: 1, max: 3600 } as const;

export function validateCaptureSettings(settings: CaptureSettings): CaptureSettings {
  requireIntegerIn('frequencyHz', settings.frequencyHz, FREQUENCY_RANGE_HZ);
  requireIntegerIn('windowSeconds', settings.windowSeconds, WINDOW_RANGE_SECONDS);
  const pid = settings.pid ?? 0;
  requireIntegerIn('pid', pid, CAPTURE_LIMITS.pid);
  return { frequencyHz: settings.frequencyHz, windowSeconds: settings.windowSeconds, pid };
}

function requireIntegerIn(name: string, value: unknown, range: { min: number; max: number }): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < range.min || value > range.max) {
    throw new RangeError(`${name} must be an integer from ${range.min} to ${range.max}, got ${String(value)}`);
  }
}
