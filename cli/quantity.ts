// Parses the amounts users type in flags and config files: durations (7d, 12h)
// and byte sizes (256MiB, 4G). Whole numbers only, so every value means one thing.

const NS_PER_UNIT: Record<string, bigint> = {
  s: 1_000_000_000n,
  m: 60n * 1_000_000_000n,
  h: 3600n * 1_000_000_000n,
  d: 86_400n * 1_000_000_000n,
  w: 7n * 86_400n * 1_000_000_000n,
};

/** "7d" → nanoseconds; units s, m, h, d, w. */
export function parseDuration(text: string): bigint {
  const m = /^(\d{1,9})([smhdw])$/.exec(text.trim());
  const unit = m ? NS_PER_UNIT[m[2] ?? ''] : undefined;
  if (!m || unit === undefined || Number(m[1]) === 0) {
    throw new Error(`cannot read duration "${text}": use a positive whole number and a unit, e.g. 30m, 12h, 7d, 2w`);
  }
  return BigInt(m[1] ?? '0') * unit;
}

const BYTES_PER_UNIT: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** "256MiB" → bytes; K, M, G, T (or KiB, MiB, GiB, TiB) are powers of 1024, and a plain number is bytes. */
export function parseByteSize(text: string): number {
  const m = /^(\d{1,15})\s*(?:([kmgt])(?:i?b)?|b)?$/i.exec(text.trim());
  const unit = m ? BYTES_PER_UNIT[(m[2] ?? '').toLowerCase()] : undefined;
  const bytes = m && unit !== undefined ? Number(m[1]) * unit : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new Error(`cannot read size "${text}": use a positive whole number of bytes, or one with K, M, G or T (powers of 1024), e.g. 256MiB`);
  }
  return bytes;
}
