// Demangling with binutils' real c++filt, and what the encoder and the
// collector's merge do with the two names of a function.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Demangler } from '../agent/demangler.js';
import { encodeWindow, type FrameNamer } from '../agent/profile-encoder.js';
import { ProfileMerger } from '../collector/profile-merge.js';
import { isRuntimeFrame } from '../collector/sample-stats.js';
import type { Profile } from '../proto/pprof.js';
import type { MappingSpec } from '../proto/pprof-builder.js';
import { capturedLogger } from './helpers/log-lines.js';

const NODE_IMMEDIATE = '_ZN4node11Environment14CheckImmediateEP10uv_check_s';
const TOKIO_POLL = '_ZN5tokio7runtime4task3raw7RawTask4poll17h1234567890abcdefE';
const V8_MICROTASKS = '_ZN2v88internal14MicrotaskQueue13RunMicrotasksEPNS0_7IsolateE';

test('C++ and Rust names come back readable, Rust hashes dropped; C names and non-names are left out', () => {
  const { log, lines } = capturedLogger();
  const demangler = new Demangler({ log });
  const out = demangler.demangle([NODE_IMMEDIATE, TOKIO_POLL, V8_MICROTASKS, 'uv__io_poll', '_Z', 'main']);
  assert.deepEqual(Object.fromEntries(out), {
    [NODE_IMMEDIATE]: 'node::Environment::CheckImmediate(uv_check_s*)',
    [TOKIO_POLL]: 'tokio::runtime::task::raw::RawTask::poll',
    [V8_MICROTASKS]: 'v8::internal::MicrotaskQueue::RunMicrotasks(v8::internal::Isolate*)',
  });
  assert.deepEqual(Object.fromEntries(demangler.demangle([TOKIO_POLL, 'main'])), { [TOKIO_POLL]: 'tokio::runtime::task::raw::RawTask::poll' }, 'cached names answer again');
  assert.deepEqual(lines, []);
  // What the demangling is for: the collector's runtime-frame patterns read readable names.
  assert.deepEqual([...out.values()].map(isRuntimeFrame), [true, true, true]);
  assert.deepEqual([NODE_IMMEDIATE, TOKIO_POLL].map(isRuntimeFrame), [false, false], 'the mangled forms would not match');
});

test('without c++filt the names stay mangled, and the agent says why once', () => {
  const { log, lines } = capturedLogger();
  const demangler = new Demangler({ log, command: '/nonexistent/c++filt' });
  assert.deepEqual(demangler.demangle([NODE_IMMEDIATE]).size, 0);
  assert.deepEqual(demangler.demangle([TOKIO_POLL]).size, 0);
  assert.deepEqual(
    lines.map((l) => l.msg),
    ['c++filt not found (apt-get install binutils): C++ and Rust function names stay mangled'],
  );
});

const lib: MappingSpec = { start: 0x7f0000000000n, limit: 0x7f0000100000n, fileOffset: 0n, file: '/usr/bin/node', buildId: 'b1', hasFunctions: true };

/** The function names and system names of a profile, by name. */
function functionNames(p: Profile): Record<string, string> {
  return Object.fromEntries(p.function.map((f) => [p.stringTable[f.name] ?? '', p.stringTable[f.systemName] ?? '']));
}

test('the encoder shows the readable name and keeps the mangled one as system_name; the collector\'s merge keeps both', () => {
  const names = new Map<bigint, string>([
    [0x7f0000001000n, NODE_IMMEDIATE],
    [0x7f0000002000n, 'uv_run'],
  ]);
  const namer: FrameNamer = {
    kernelFrame: (address) => ({ address, mapping: null, functionName: 'do_syscall_64' }),
    userFrame: (_pid, address) => ({ address, mapping: lib, functionName: names.get(address) ?? null }),
  };
  const demangler = new Demangler({ log: capturedLogger().log });
  const profile = encodeWindow(
    { endMonotonicNs: 0n, threadNames: new Map(), stacks: [{ pid: 9, tid: 9, kernel: [], user: [0x7f0000001000n, 0x7f0000002000n], count: 4 }] },
    namer,
    { frequencyHz: 19, startUnixNanos: 0n, endUnixNanos: 10n, processComm: () => 'node', isHot: () => true, demangle: (n) => demangler.demangle(n) },
  );
  const expected = { 'node::Environment::CheckImmediate(uv_check_s*)': NODE_IMMEDIATE, uv_run: 'uv_run' };
  assert.deepEqual(functionNames(profile), expected);

  const merger = new ProfileMerger({ pid: 0, comm: '' });
  merger.add(profile, { startNs: 0n, endNs: 10n });
  const merged = merger.result();
  assert.ok(merged);
  assert.deepEqual(functionNames(merged), expected);
});
