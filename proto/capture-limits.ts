// The shape of an on-demand capture request: its id's characters and the ranges its numbers must fall in (see
// CaptureRequest in hotloop.proto). Both sides check them: the collector to
// answer its caller at once, the agent because it trusts nothing it is sent.

/** Letters, digits, '_' and '-', not starting with '-': safe in a log, a file name or an argv. */
export const CAPTURE_REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export const CAPTURE_LIMITS = {
  durationSeconds: { min: 1, max: 300 },
  frequencyHz: { min: 1, max: 1000 },
  /** PID_MAX_LIMIT on 64-bit Linux; 0 = every process. */
  pid: { min: 0, max: 4_194_304 },
} as const;

export type CaptureNumbers = { [K in keyof typeof CAPTURE_LIMITS]: number };

/** Why the numbers are not a capture an agent would run, or null when they are. */
export function captureNumbersProblem(numbers: CaptureNumbers): string | null {
  for (const name of Object.keys(CAPTURE_LIMITS) as (keyof typeof CAPTURE_LIMITS)[]) {
    const { min, max } = CAPTURE_LIMITS[name];
    const value = numbers[name];
    if (!Number.isInteger(value) || value < min || value > max) return `${name} ${value} is outside ${min}..${max}`;
  }
  return null;
}
