// What a window's samples say about each process: how concentrated its leaf
// instructions are, how much of it is inside syscalls, and how much inside
// known runtime/poll frames rather than application code.
import type { Profile } from '../proto/pprof.js';

export interface ProcessSampleStats {
  samples: number;
  /** Distinct leaf instruction addresses that together carry 90% of the samples. */
  leafAddresses90: number;
  /** Share of samples on the single most-sampled leaf address. */
  topLeafShare: number;
  /** Share of samples with a kernel frame (inside a syscall or interrupt). */
  syscallShare: number;
  /** Share of samples with a known runtime/event-loop frame on the stack (libuv, V8, CPython, tokio...). */
  runtimeShare: number;
  /** Share of samples inside a libc poll/epoll/select wrapper, whoever called it. */
  pollWrapperShare: number;
  /** The runtime or poll-wrapper frame seen most, for evidence ('' when none). */
  topRuntimeFrame: string;
  topRuntimeShare: number;
}

/**
 * Frames of event-loop runtimes: libuv, Node/V8 immediate and microtask
 * processing, CPython's asyncio/select module, tokio/mio/tracing.
 */
const RUNTIME_FRAME =
  /^(uv_run|uv__io_poll|uv__run_check|uv__run_idle|uv__run_prepare|uv__async_io|uv__epoll_ctl_flush)$|node::.*(Immediate|Tick|Microtask)|v8::internal::.*Microtask|^Builtins_.*Microtask|_run_once|select_epoll_poll|^PyEval_EvalFrame|^_PyEval_EvalFrameDefault$|^(tokio|mio|tracing_core|tracing|futures_util|futures_executor|async_std|smol)::/;
/** libc's poll family: every event loop passes through them, so they say "polling", not "which runtime". */
const POLL_WRAPPER_FRAME = /^(__GI_)?(__)?(epoll_wait|epoll_pwait|epoll_pwait2|poll|ppoll|select|pselect|pselect6)(_nocancel)?$/;

/** x86-64 kernel text lives in the upper half of the address space. */
const KERNEL_ADDRESS_FLOOR = 0xffff800000000000n;

export function isRuntimeFrame(name: string): boolean {
  return RUNTIME_FRAME.test(name);
}

export function isPollWrapperFrame(name: string): boolean {
  return POLL_WRAPPER_FRAME.test(name);
}

/** Per-pid statistics of one window's profile (pid from the sample's `pid` label). */
export function sampleStatsByPid(profile: Profile): Map<number, ProcessSampleStats> {
  const str = (i: number): string => profile.stringTable[i] ?? '';
  const pidKey = profile.stringTable.indexOf('pid');
  const fnName = new Map(profile.function.map((f) => [f.id, str(f.name)]));
  const locations = new Map(profile.location.map((l) => [l.id, l]));
  const locNames = new Map(profile.location.map((l) => [l.id, l.line.map((line) => fnName.get(line.functionId) ?? '')]));

  interface Acc {
    samples: number;
    leaf: Map<bigint, number>;
    inKernel: number;
    inRuntime: number;
    inPollWrapper: number;
    runtimeFrames: Map<string, number>;
  }
  const acc = new Map<number, Acc>();
  for (const s of profile.sample) {
    const pid = s.label.find((l) => l.key === pidKey)?.num ?? 0;
    const n = s.value[0] ?? 0;
    let a = acc.get(pid);
    if (!a) {
      a = { samples: 0, leaf: new Map(), inKernel: 0, inRuntime: 0, inPollWrapper: 0, runtimeFrames: new Map() };
      acc.set(pid, a);
    }
    a.samples += n;
    const leafId = s.locationId[0];
    const leafAddr = leafId === undefined ? 0n : (locations.get(leafId)?.address ?? 0n);
    a.leaf.set(leafAddr, (a.leaf.get(leafAddr) ?? 0) + n);
    if (s.locationId.some((id) => (locations.get(id)?.address ?? 0n) >= KERNEL_ADDRESS_FLOOR)) a.inKernel += n;
    const names = s.locationId.flatMap((id) => locNames.get(id) ?? []);
    const runtime = new Set(names.filter(isRuntimeFrame));
    const wrappers = new Set(names.filter(isPollWrapperFrame));
    if (runtime.size > 0) a.inRuntime += n;
    if (wrappers.size > 0) a.inPollWrapper += n;
    for (const name of [...runtime, ...wrappers]) a.runtimeFrames.set(name, (a.runtimeFrames.get(name) ?? 0) + n);
  }

  const out = new Map<number, ProcessSampleStats>();
  for (const [pid, a] of acc) {
    const counts = [...a.leaf.values()].sort((x, y) => y - x);
    let covered = 0;
    let leafAddresses90 = 0;
    for (const c of counts) {
      if (covered >= 0.9 * a.samples) break;
      covered += c;
      leafAddresses90++;
    }
    let topRuntimeFrame = '';
    let topRuntime = 0;
    for (const [name, c] of a.runtimeFrames) if (c > topRuntime) [topRuntimeFrame, topRuntime] = [name, c];
    const share = (x: number): number => (a.samples > 0 ? x / a.samples : 0);
    out.set(pid, {
      samples: a.samples,
      leafAddresses90,
      topLeafShare: share(counts[0] ?? 0),
      syscallShare: share(a.inKernel),
      runtimeShare: share(a.inRuntime),
      pollWrapperShare: share(a.inPollWrapper),
      topRuntimeFrame,
      topRuntimeShare: share(topRuntime),
    });
  }
  return out;
}
