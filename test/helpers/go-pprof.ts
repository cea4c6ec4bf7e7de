// Runs Debian's `go tool pprof`, the independent pprof reader the tests check our output against.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const goCache = mkdtempSync(path.join(tmpdir(), 'hotloop-gocache-'));

export function goPprofTop(file: string): string {
  return execFileSync('go', ['tool', 'pprof', '-top', '-nodecount=200', file], {
    encoding: 'utf8',
    env: { ...process.env, GOCACHE: goCache, GOFLAGS: '-mod=mod', HOME: process.env.HOME ?? tmpdir(), PPROF_TMPDIR: goCache },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 120_000,
  });
}
