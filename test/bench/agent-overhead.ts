// `npm run bench`: what continuous profiling costs. 60 s at 19 Hz with two busy
// processes, the agent (plus its bpftrace children) against `perf record -F 19 -a -g`,
// measured after a 30 s start-up (kernel symbols, the busy processes' first
// windows and syscall slices), whose cost is printed on its own.
import { childPids } from '../../agent/proc-stat.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { currentRssMiB, usageOf, type Usage } from '../helpers/proc-usage.js';
import { compileC, freePort, repoRoot, startHotloop, stopProcess, tempDir } from '../helpers/processes.js';

const MEASURE_S = Number(process.env.HOTLOOP_BENCH_SECONDS ?? 60);
const WARMUP_S = 30;

/** Summed over the pids still running: an exited child's CPU is in its parent's reaped-children time by then. */
function total(pids: number[]): Usage {
  const sum = { cpuSeconds: 0, peakRssMiB: 0 };
  for (const pid of pids) {
    if (!existsSync(`/proc/${pid}`)) continue;
    const u = usageOf(pid);
    sum.cpuSeconds += u.cpuSeconds;
    sum.peakRssMiB += u.peakRssMiB;
  }
  return sum;
}

async function measure(label: string, start: () => ChildProcess, pidsOf: (root: number) => number[]): Promise<Usage> {
  const root = start();
  await sleep(WARMUP_S * 1000);
  const pids = pidsOf(root.pid ?? 0);
  const before = total(pids);
  console.log(`  start-up: cpu ${before.cpuSeconds.toFixed(2)} s in the first ${WARMUP_S} s = ${((100 * before.cpuSeconds) / WARMUP_S).toFixed(2)}% of one core`);
  await sleep(MEASURE_S * 1000);
  const after = total(pids);
  for (const pid of pids.filter((p) => existsSync(`/proc/${p}`))) {
    const u = usageOf(pid);
    const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    console.log(`  ${comm.padEnd(16)} pid ${pid}: cpu ${u.cpuSeconds.toFixed(2)} s since start, peak RSS ${u.peakRssMiB.toFixed(1)} MiB, RSS now ${currentRssMiB(pid).toFixed(1)} MiB`);
  }
  await stopProcess(root);
  const u = { cpuSeconds: after.cpuSeconds - before.cpuSeconds, peakRssMiB: after.peakRssMiB };
  console.log(
    `${label.padEnd(34)} cpu ${u.cpuSeconds.toFixed(2).padStart(6)} s over ${MEASURE_S} s = ${((100 * u.cpuSeconds) / MEASURE_S).toFixed(2).padStart(5)}% of one core, peak RSS ${u.peakRssMiB.toFixed(1)} MiB (pids ${pids.join(',')})`,
  );
  return u;
}

async function main(): Promise<void> {
  const bin = compileC(readFileSync(path.join(repoRoot, 'test/workloads/spin.c'), 'utf8'), 'spin');
  const busy = [spawn(bin, [], { stdio: 'ignore' }), spawn(bin, [], { stdio: 'ignore' })];
  const grpc = `127.0.0.1:${await freePort()}`;
  const collector = startHotloop(['collector', '--grpc', grpc, '--http', `127.0.0.1:${await freePort()}`, '--data', tempDir('bench-data')]).child;
  try {
    console.log(`hotloop bench: ${MEASURE_S} s measured after ${WARMUP_S} s warm-up, 19 Hz, 2 busy processes, ${(await import('node:os')).cpus().length} CPUs`);
    const agent = await measure(
      'hotloop agent + bpftrace',
      () => startHotloop(['agent', '--spool', tempDir('agent-spool'), '--http', '127.0.0.1:0', '--collector', grpc, '--host', 'bench', '--frequency', '19', '--window', '10']).child,
      (pid) => [pid, ...childPids(pid)],
    );
    const perfFile = path.join(tempDir('bench-perf'), 'perf.data');
    const perf = await measure(
      'perf record -F 19 -a -g',
      () => spawn('perf', ['record', '-F', '19', '-a', '-g', '-q', '-o', perfFile], { stdio: 'ignore' }),
      (pid) => [pid],
    );
    console.log(`ratio agent/perf: cpu ${(agent.cpuSeconds / Math.max(perf.cpuSeconds, 0.01)).toFixed(2)}x, peak RSS ${(agent.peakRssMiB / perf.peakRssMiB).toFixed(2)}x`);
    console.log(`goal: agent ≤ 1% of one core (${agent.cpuSeconds / MEASURE_S <= 0.01 ? 'met' : 'NOT met'}), < 150 MB RSS (${agent.peakRssMiB * 1.048576 < 150 ? 'met' : 'NOT met'})`);
  } finally {
    for (const b of busy) b.kill('SIGKILL');
    await stopProcess(collector);
  }
}

await main();
