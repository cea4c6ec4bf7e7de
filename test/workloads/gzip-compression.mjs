// Counterpart (legitimate compute): a log archiver gzip-compressing batches of text, like a
// log rotation job. It burns a core inside zlib's deflate with few syscalls; real work on every
// iteration, so it must not be flagged as a busy loop.
import { gzipSync } from 'node:zlib';

function makeLogBatch(batch) {
  const lines = [];
  for (let i = 0; i < 4000; i++) {
    lines.push(`2024-05-01T12:00:${String(i % 60).padStart(2, '0')}Z batch=${batch} req=${i * 7919} status=${200 + (i % 5)} path=/api/v1/items/${i % 97}`);
  }
  return Buffer.from(lines.join('\n'));
}

const batches = Array.from({ length: 8 }, (_, b) => makeLogBatch(b));
for (let round = 0; ; round++) gzipSync(batches[round % batches.length], { level: 6 });
