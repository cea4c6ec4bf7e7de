// Reads the files that hold secrets and certificates, saying which flag named a
// file that is missing, malformed or readable by others.
import { readFileSync, statSync } from 'node:fs';

/** Printable ASCII without spaces: what an HTTP/2 header value can carry after "Bearer ". */
const TOKEN = /^[\x21-\x7e]+$/;
/** Shorter tokens can be guessed; `openssl rand -hex 32` makes a good one. */
const MIN_TOKEN_CHARS = 16;

function read(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read ${flag} ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** The token in `file` (surrounding whitespace ignored); `warn` hears if the file is readable by group or others. */
export function readTokenFile(file: string, flag: string, warn: (message: string) => void): string {
  const token = read(file, flag).toString('utf8').trim();
  if (token.length < MIN_TOKEN_CHARS || !TOKEN.test(token)) {
    throw new Error(`${flag} ${file} must hold one token of at least ${MIN_TOKEN_CHARS} printable characters without spaces (e.g. from \`openssl rand -hex 32\`)`);
  }
  const mode = statSync(file).mode & 0o777;
  const openTo = [mode & 0o070 ? 'its group' : '', mode & 0o007 ? 'other users' : ''].filter(Boolean);
  if (openTo.length > 0) warn(`${flag} ${file} is open to ${openTo.join(' and ')} (mode ${mode.toString(8).padStart(4, '0')}); chmod 600 it`);
  return token;
}

/** A PEM file's bytes; refuses a file with no PEM block in it. */
export function readPemFile(file: string, flag: string): Buffer {
  const pem = read(file, flag);
  if (!pem.includes('-----BEGIN ')) throw new Error(`${flag} ${file} is not a PEM file (no "-----BEGIN" line)`);
  return pem;
}
