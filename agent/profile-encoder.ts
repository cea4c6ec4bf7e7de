// Turns one captured window (raw addresses) into a pprof Profile: every frame
// symbolized, every sample labelled with pid, comm, thread and hot.
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
  const userIds = new Map<string, number>();
  const kernelIds = new Map<bigint, number>();

  for (const stack of window.stacks) {
    const ids: number[] = [];
    stack.kernel.forEach((addr) => {
      let id = kernelIds.get(addr);
      if (id === undefined) {
        id = builder.location(namer.kernelFrame(addr));
        kernelIds.set(addr, id);
      }
      ids.push(id);
    });
    stack.user.forEach((addr, i) => {
      // The user leaf is the interrupted instruction only when the sample hit user space.
      const isLeaf = i === 0 && stack.kernel.length === 0;
      const key = `${stack.pid}:${addr}:${isLeaf ? 1 : 0}`;
      let id = userIds.get(key);
      if (id === undefined) {
        id = builder.location(namer.userFrame(stack.pid, addr, isLeaf));
        userIds.set(key, id);
      }
      ids.push(id);
    });
    const comm = ctx.processComm(stack.pid) ?? window.threadNames.get(stack.tid) ?? '';
    builder.addSample(ids, [stack.count, stack.count * period], [
      { key: 'pid', num: stack.pid },
      { key: 'comm', str: comm },
      { key: 'thread', num: stack.tid },
      { key: 'hot', str: String(ctx.isHot(stack.pid)) },
    ]);
  }
  return builder.build();
}
