// Parses the times users type: RFC 3339, unix seconds, `now`, or relative to now (-5m).

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Returns unix nanoseconds; throws with the accepted forms when the text is none of them. */
export function parseTimeSpec(text: string, nowMs: number = Date.now()): bigint {
  const t = text.trim();
  if (t === 'now') return BigInt(nowMs) * 1_000_000n;
  const rel = /^-(\d+(?:\.\d+)?)([smhd])$/.exec(t);
  if (rel) {
    const ms = Number(rel[1]) * (UNIT_MS[rel[2] ?? 's'] ?? 1000);
    return BigInt(Math.round(nowMs - ms)) * 1_000_000n;
  }
  if (/^\d+(\.\d+)?$/.test(t)) {
    const [whole, frac = ''] = t.split('.');
    return BigInt(whole ?? '0') * 1_000_000_000n + BigInt((frac + '000000000').slice(0, 9));
  }
  if (/^\d{4}-\d{2}-\d{2}T/.test(t)) {
    const ms = Date.parse(t);
    if (!Number.isNaN(ms)) return BigInt(ms) * 1_000_000n;
  }
  throw new Error(`cannot read time "${text}": use RFC 3339 (2026-11-22T09:30:00Z), unix seconds, "now", or relative (-30s, -5m, -1h, -2d)`);
}

export function formatUnixNanos(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString();
}
