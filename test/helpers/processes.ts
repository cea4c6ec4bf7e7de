// Real processes for tests: compile C workloads, run the hotloop CLI, free loopback ports.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const hotloopBin = path.join(repoRoot, 'dist/cli/hotloop.js');

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), `hotloop-${prefix}-`));
}

/** Compiles C source with frame pointers and symbols; returns the binary's path. */
export function compileC(source: string, name: string, extraFlags: string[] = []): string {
  const dir = tempDir('cc');
  const src = path.join(dir, `${name}.c`);
  const bin = path.join(dir, name);
  execFileSync('sh', ['-c', 'cat > "$0"', src], { input: source });
  execFileSync('gcc', ['-O1', '-g', '-fno-omit-frame-pointer', '-o', bin, src, ...extraFlags]);
  return bin;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts a long-running `hotloop` subcommand; its JSON log lines are kept for assertions. */
export function startHotloop(args: string[]): { child: ChildProcess; logs: () => string } {
  const child = spawn(process.execPath, [hotloopBin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let logs = '';
  child.stderr?.on('data', (d: Buffer) => {
    logs += d.toString();
    if (logs.length > 4_000_000) logs = logs.slice(-2_000_000);
  });
  return { child, logs: () => logs };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a `hotloop` client command to completion. */
export function runHotloop(args: string[], timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [hotloopBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** SIGTERM, then SIGKILL if it has not exited within graceMs; resolves with its exit code. */
export function stopProcess(child: ChildProcess, graceMs = 10_000): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    child.kill('SIGTERM');
  });
}

/** Polls until check() returns a value, or fails after limitMs (a bound, not a speed assertion). */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, limitMs = 120_000): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
