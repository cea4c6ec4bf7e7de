// What one window may weigh and how often one agent may upload, so a broken or
// hostile agent gets its uploads refused with a reason instead of exhausting
// the collector.

export interface UploadLimits {
  /** Largest pprof of one window, gzipped as sent or unzipped (bounds gzip bombs). */
  maxWindowBytes: number;
  /** Most sample rows in one window's pprof. */
  maxSamplesPerWindow: number;
  /** Sustained uploads per agent per minute. */
  uploadsPerMinute: number;
  /** Uploads an agent may send at once after being quiet, e.g. its backlog after a collector outage. */
  uploadBurst: number;
}

/**
 * Far above what an agent sends (one window per 10 s, a few MB at most), with
 * an hour of backlog allowed as a burst.
 */
export const DEFAULT_UPLOAD_LIMITS: UploadLimits = {
  maxWindowBytes: 32 * 1024 * 1024,
  maxSamplesPerWindow: 1_000_000,
  uploadsPerMinute: 60,
  uploadBurst: 360,
};

/** A token bucket per agent id: `burst` tokens, refilled at `perMinute`. */
export class UploadRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();
  private readonly perMs: number;
  private lastSweepMs: number;

  constructor(
    private readonly limits: Pick<UploadLimits, 'uploadsPerMinute' | 'uploadBurst'>,
    private readonly nowMs: () => number = Date.now,
  ) {
    this.perMs = limits.uploadsPerMinute / 60_000;
    this.lastSweepMs = nowMs();
  }

  /** Takes one upload from the agent's bucket: 0 when taken, else the ms until a token is there. */
  take(agentId: string): number {
    const now = this.nowMs();
    if (now - this.lastSweepMs >= SWEEP_INTERVAL_MS) this.forgetFullBuckets(now);
    const bucket = this.buckets.get(agentId) ?? { tokens: this.limits.uploadBurst, atMs: now };
    bucket.tokens = Math.min(this.limits.uploadBurst, bucket.tokens + (now - bucket.atMs) * this.perMs);
    bucket.atMs = now;
    this.buckets.set(agentId, bucket);
    if (bucket.tokens < 1) return Math.ceil((1 - bucket.tokens) / this.perMs);
    bucket.tokens -= 1;
    return 0;
  }

  /** A bucket that has refilled is the same as none: dropping it keeps agent ids that come and go from piling up. */
  private forgetFullBuckets(now: number): void {
    this.lastSweepMs = now;
    for (const [id, b] of this.buckets) {
      if (b.tokens + (now - b.atMs) * this.perMs >= this.limits.uploadBurst) this.buckets.delete(id);
    }
  }
}

const SWEEP_INTERVAL_MS = 60_000;

/** Throws, naming the limit, unless every limit is a whole number of at least 1. */
export function validateUploadLimits(limits: UploadLimits): void {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`upload limit ${name} must be a whole number of at least 1, not ${value}`);
  }
}
