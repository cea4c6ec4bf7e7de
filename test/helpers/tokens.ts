// Bearer tokens and the files that hold them, for auth tests.
import { randomBytes } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const newToken = (): string => randomBytes(32).toString('hex');

/** Writes `token` to dir/name with `mode` (0600 unless a test wants it open); returns the path. */
export function writeTokenFile(dir: string, name: string, token: string, mode = 0o600): string {
  const file = path.join(dir, name);
  writeFileSync(file, `${token}\n`);
  chmodSync(file, mode);
  return file;
}
