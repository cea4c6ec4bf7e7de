// `node dist/test/bench/signals-overhead.js`: what the no-progress signals
// cost. The agent (10 s windows, 19 Hz) runs against a real collector, first
// on a host with no hot process, then while a process makes 1M syscalls/s
// (paced getppid() calls), which the agent counts and slices every window.
// Prints the agent's CPU (itself, its running children and its exited ones)
// as measured from /proc, what the agent reported about itself, and the rate
// the syscall process achieved each second (what counting and tracing cost it).
import { childPids } from '../../agent/proc-stat.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { compileC, freePort, startHotloop, stopProcess, tempDir } from '../helpers/processes.js';

const MEASURE_S = Number(process.env.HOTLOOP_BENCH_SECONDS ?? 60);
const WARMUP_S = 15;
const CLK_TCK = 100;
const TARGET_SYSCALLS_PER_SEC = 1_000_000;

// Paced: batches of getppid() calls, then a busy wait on the vDSO clock (no
// syscall) until the batch is due, so the rate is the target whenever the
// process is not slowed down; it prints the rate it achieved every second.
const PACED_SYSCALLS = `
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
  double rate = atof(argv[1]), start = now(), last = start;
  long done = 0, since = 0;
  for (;;) {
    for (int i = 0; i < 1000; i++) syscall(SYS_getppid);
    done += 1000; since += 1000;
    while (now() < start + done / rate) {}
    double t = now();
    if (t - last >= 1) { printf("%.0f\\n", since / (t - last)); fflush(stdout); since = 0; last = t; }
  }
}
`;

/** CPU seconds of a process, its exited-and-reaped children and its running children. */
function treeCpuSeconds(pid: number): number {
  const fields = (p: number): number[] => {
    const text = readFileSync(`/proc/${p}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ').slice(11, 15).map(Number);
  };
  const [utime, stime, cutime, cstime] = fields(pid);
  let ticks = utime! + stime! + cutime! + cstime!;
  for (const child of childPids(pid)) {
    try {
      const [cu, cs] = fields(child);
      ticks += cu! + cs!;
    } catch {
      // exited between listing and reading; counted in cutime next time
    }
  }
  return ticks / CLK_TCK;
}

interface ReportedCost {
  cpuSeconds: number;
  signalsCpuSeconds: number;
  rssBytes: number;
}

/** The cost the agent logged for each window since `from` (a log offset). */
function reportedCosts(logs: string, from: number): ReportedCost[] {
  return logs
    .slice(from)
    .split('\n')
    .filter((l) => l.includes('"window captured"'))
    .map((l) => (JSON.parse(l) as { cost: ReportedCost }).cost);
}

async function measure(label: string, grpc: string): Promise<void> {
  const agent = startHotloop(['agent', '--spool', tempDir('bench-spool'), '--http', '127.0.0.1:0', '--collector', grpc, '--host', 'bench-signals', '--frequency', '19', '--window', '10']);
  await sleep(WARMUP_S * 1000);
  const before = treeCpuSeconds(agent.child.pid!);
  const logOffset = agent.logs().length;
  await sleep(MEASURE_S * 1000);
  const cpu = treeCpuSeconds(agent.child.pid!) - before;
  const costs = reportedCosts(agent.logs(), logOffset);
  await stopProcess(agent.child);
  const sum = (f: (c: ReportedCost) => number): number => costs.reduce((a, c) => a + f(c), 0);
  const windowsS = costs.length * 10;
  console.log(
    `${label.padEnd(28)} measured: ${cpu.toFixed(2)} s CPU over ${MEASURE_S} s = ${((100 * cpu) / MEASURE_S).toFixed(2)}% of one core | ` +
      `reported over ${costs.length} windows: ${((100 * sum((c) => c.cpuSeconds)) / Math.max(windowsS, 1)).toFixed(2)}% of one core, ` +
      `signals ${((100 * sum((c) => c.signalsCpuSeconds)) / Math.max(windowsS, 1)).toFixed(2)}%, ` +
      `RSS agent+children ${(Math.max(...costs.map((c) => c.rssBytes)) / 2 ** 20).toFixed(0)} MiB`,
  );
}

async function main(): Promise<void> {
  const grpc = `127.0.0.1:${await freePort()}`;
  const collector = startHotloop(['collector', '--grpc', grpc, '--http', `127.0.0.1:${await freePort()}`, '--data', tempDir('bench-signals-data')]).child;
  let syscalls: ChildProcess | undefined;
  try {
    console.log(`hotloop signals bench: ${MEASURE_S} s measured after ${WARMUP_S} s warm-up, 19 Hz, 10 s windows`);
    await measure('no hot process', grpc);

    syscalls = spawn(compileC(PACED_SYSCALLS, 'paced-syscalls'), [String(TARGET_SYSCALLS_PER_SEC)], { stdio: ['ignore', 'pipe', 'ignore'] });
    const rates: number[] = [];
    syscalls.stdout?.on('data', (d: Buffer) => rates.push(...d.toString().trim().split('\n').map(Number)));
    await sleep(3000);
    const unprofiled = rates.splice(0);
    await measure('1M syscalls/s process', grpc);
    const sorted = [...rates].sort((a, b) => a - b);
    const fmt = (n: number): string => `${(n / 1e6).toFixed(2)}M/s`;
    console.log(
      `syscall process: ${fmt(Math.min(...unprofiled))} before the agent; under the agent per second: min ${fmt(sorted[0] ?? 0)}, ` +
        `median ${fmt(sorted[Math.floor(sorted.length / 2)] ?? 0)}, seconds below 95% of target: ${sorted.filter((r) => r < 0.95 * TARGET_SYSCALLS_PER_SEC).length} of ${sorted.length}`,
    );
  } finally {
    syscalls?.kill('SIGKILL');
    await stopProcess(collector);
  }
}

await main();
