// Counterpart (legitimate compute): a content-addressing service hashing uploaded blobs with
// SHA-256, like a backup deduplicator. It burns a core inside OpenSSL's hash code with few
// syscalls; real work on every iteration, so it must not be flagged as a busy loop.
import { createHash, randomBytes } from 'node:crypto';

const blob = randomBytes(1 << 20);

function hashBlob(data, salt) {
  return createHash('sha256').update(salt).update(data).digest();
}

let digest = Buffer.alloc(32);
for (;;) digest = hashBlob(blob, digest); // chaining digests keeps each round dependent on the last
