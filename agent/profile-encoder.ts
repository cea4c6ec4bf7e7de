// Turns one captured window (raw addresses) into a pprof Profile: every frame
// symbolized (C++/Rust names demangled, the mangled one kept as system_name),
// every sample labelled with pid, comm, thread and hot.
import type { CapturedWindow } from './capture-types.js';
import type { FrameSpec } from '../proto/pprof-builder.js';
import { CPU_PERIOD_TYPE, CPU_SAMPLE_TYPES, ProfileBuilder, periodNanos } from '../proto/pprof-builder.js';
import type { Profile } from '../proto/pprof.js';

/** The part of the symbolizer the encoder needs (see symbolizer.ts). */
export interface FrameNamer {
  kernelFrame(address: bigint): FrameSpec;
  userFrame(pid: number, address: bigint, isLeaf: boolean): FrameSpec;
}

export interface WindowContext {
  frequencyHz: number;
  startUnixNanos: bigint;
  endUnixNanos: bigint;
  /** Process comm by pid; falls back to the thread name the backend saw. */
  processComm: (pid: number) => string | undefined;
  isHot: (pid: number) => boolean;
  /** Readable forms of mangled names, given all of the window's at once; names left out stay as they are. */
  demangle?: (names: Iterable<string>) => ReadonlyMap<string, string>;
}

export function encodeWindow(window: CapturedWindow, namer: FrameNamer, ctx: WindowContext): Profile {
  const builder = new ProfileBuilder({
    sampleTypes: CPU_SAMPLE_TYPES,
    periodType: CPU_PERIOD_TYPE,
    period: periodNanos(ctx.frequencyHz),
    timeNanos: ctx.startUnixNanos,
    durationNanos: ctx.endUnixNanos - ctx.startUnixNanos,
  });
  const period = periodNanos(ctx.frequencyHz);
  // Stacks repeat addresses heavily; name each (pid, address, leafness) once.
  const userFrames = new Map<string, FrameSpec>();
  const kernelFrames = new Map<bigint, FrameSpec>();
  const stacks = window.stacks.map((stack) => {
    const frames: FrameSpec[] = [];
    for (const addr of stack.kernel) {
      let frame = kernelFrames.get(addr);
      if (!frame) kernelFrames.set(addr, (frame = namer.kernelFrame(addr)));
      frames.push(frame);
    }
    stack.user.forEach((addr, i) => {
      // The user leaf is the interrupted instruction only when the sample hit user space.
      const isLeaf = i === 0 && stack.kernel.length === 0;
      const key = `${stack.pid}:${addr}:${isLeaf ? 1 : 0}`;
      let frame = userFrames.get(key);
      if (!frame) userFrames.set(key, (frame = namer.userFrame(stack.pid, addr, isLeaf)));
      frames.push(frame);
    });
    return { stack, frames };
  });

  // One demangling batch for the whole window.
  const readable = ctx.demangle?.(new Set([...userFrames.values()].flatMap((f) => (f.functionName === null ? [] : [f.functionName])))) ?? new Map<string, string>();
  const locationIds = new Map<FrameSpec, number>();
  const locationOf = (frame: FrameSpec): number => {
    let id = locationIds.get(frame);
    if (id === undefined) {
      const shown = frame.functionName === null ? undefined : readable.get(frame.functionName);
      id = builder.location(shown === undefined ? frame : { ...frame, functionName: shown, systemName: frame.functionName ?? shown });
      locationIds.set(frame, id);
    }
    return id;
  };

  for (const { stack, frames } of stacks) {
    const comm = ctx.processComm(stack.pid) ?? window.threadNames.get(stack.tid) ?? '';
    builder.addSample(frames.map(locationOf), [stack.count, stack.count * period], [
      { key: 'pid', num: stack.pid },
      { key: 'comm', str: comm },
      { key: 'thread', num: stack.tid },
      { key: 'hot', str: String(ctx.isHot(stack.pid)) },
    ]);
  }
  return builder.build();
}
