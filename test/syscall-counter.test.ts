// The perf_event_open syscall counter against real processes that make a
// known number of syscalls: every thread counted, and a process that exits
// while being counted keeps its count.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { SyscallCounter, syscallEnterTracepointId } from '../agent/syscall-counter.js';
import { compileC, stopProcess } from './helpers/processes.js';
import { mountTracefs } from './helpers/tracing.js';

before(() => mountTracefs());

const CALLS_PER_THREAD = 200_000;
/**
 * Syscalls the program makes around its counted loop (thread wake-ups, the
 * write announcing it is done, signal return, exit). The count must land in
 * [expected, expected + this].
 */
const OVERHEAD_SYSCALLS = 100;

// Starts `threads` workers that block on a pipe; SIGUSR1 releases each to make
// exactly CALLS getppid() syscalls; then it says "done" and pauses (or, given
// "exit", exits at once).
const PROGRAM = `
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int go[2];
static long calls;

static void *worker(void *arg) {
  char c;
  (void)arg;
  if (read(go[0], &c, 1) != 1) abort();
  for (long i = 0; i < calls; i++) syscall(SYS_getppid);
  return NULL;
}

int main(int argc, char **argv) {
  int threads = atoi(argv[1]);
  calls = atol(argv[2]);
  int exit_after = argc > 3 && strcmp(argv[3], "exit") == 0;
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, NULL);
  if (pipe(go) != 0) return 1;
  pthread_t t[16];
  for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, NULL);
  write(1, "ready\\n", 6);
  int sig;
  sigwait(&usr1, &sig);
  for (int i = 0; i < threads; i++) write(go[1], "x", 1);
  for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
  if (exit_after) return 0;
  write(1, "done\\n", 5);
  for (;;) pause();
}
`;

let bin = '';
let tracepointId = 0;
const children: ChildProcess[] = [];

before(() => {
  bin = compileC(PROGRAM, 'counted-syscalls', ['-pthread']);
  const id = syscallEnterTracepointId();
  assert.ok(id !== null, 'raw_syscalls:sys_enter is listed in tracefs');
  tracepointId = id;
});

after(async () => {
  for (const c of children) await stopProcess(c, 1000);
});

/** Starts the program and resolves once all its threads exist. */
async function startProgram(threads: number, mode = ''): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(bin, [String(threads), String(CALLS_PER_THREAD), ...(mode ? [mode] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  while (!out.includes('ready')) await once(child.stdout!, 'data');
  return { child, output: () => out };
}

test('counts exactly the syscalls of every thread, started before counting began', async () => {
  const threads = 3;
  const { child, output } = await startProgram(threads);
  const counter = SyscallCounter.open(child.pid!, tracepointId);
  try {
    assert.equal(counter.threads, threads + 1, 'one event per thread, main thread included');
    const idle = counter.count();
    assert.ok(idle <= OVERHEAD_SYSCALLS, `a waiting process makes almost no syscalls (${idle})`);
    child.kill('SIGUSR1');
    while (!output().includes('done')) await once(child.stdout!, 'data');
    const counted = counter.count();
    const expected = threads * CALLS_PER_THREAD;
    assert.ok(counted >= expected, `counted ${counted} ≥ ${expected}`);
    assert.ok(counted <= expected + OVERHEAD_SYSCALLS, `counted ${counted} ≤ ${expected} + ${OVERHEAD_SYSCALLS}`);
  } finally {
    counter.close();
  }
});

test('a process that exits while being counted keeps its count', async () => {
  const threads = 2;
  const { child } = await startProgram(threads, 'exit');
  const counter = SyscallCounter.open(child.pid!, tracepointId);
  try {
    const exited = once(child, 'exit');
    child.kill('SIGUSR1');
    await exited;
    counter.refreshThreads(); // the threads are gone: their final counts are folded in and their events closed
    assert.equal(counter.threads, 0);
    const counted = counter.count();
    const expected = threads * CALLS_PER_THREAD;
    assert.ok(counted >= expected && counted <= expected + OVERHEAD_SYSCALLS, `counted ${counted}, expected ${expected}`);
  } finally {
    counter.close();
  }
});

test('a pid that does not exist counts nothing, without an error', () => {
  const counter = SyscallCounter.open(4_194_304 + 1, tracepointId); // above the largest possible pid_max
  assert.equal(counter.threads, 0);
  assert.equal(counter.count(), 0);
  counter.close();
});
