// The process metadata a window carries: every process that used CPU in the
// window (from the /proc tracker) or was sampled in it (from what the tracker
// last read about it, or the thread name the kernel reported).
import type { ProcessInfo } from '../proto/wire.js';
import type { CapturedWindow } from './capture-types.js';
import type { HotProcessTracker, ProcessWindowSummary } from './hot-process-tracker.js';

export function describeProcesses(
  window: CapturedWindow,
  summaries: ReadonlyMap<number, ProcessWindowSummary>,
  tracker: Pick<HotProcessTracker, 'metadataFor'>,
): Map<number, ProcessInfo> {
  const out = new Map<number, ProcessInfo>();
  for (const s of summaries.values()) {
    out.set(s.pid, { pid: s.pid, comm: s.comm, exe: s.exe, cmdline: s.cmdline, cgroup: s.cgroup, containerId: s.containerId, hot: s.hot, cpuCores: s.cpuCores });
  }
  for (const stack of window.stacks) {
    if (out.has(stack.pid)) continue;
    const meta = tracker.metadataFor(stack.pid);
    const comm = meta?.comm ?? window.threadNames.get(stack.tid) ?? '';
    out.set(stack.pid, {
      pid: stack.pid,
      comm,
      exe: meta?.exe ?? '',
      cmdline: meta?.cmdline ?? '',
      cgroup: meta?.cgroup ?? '',
      containerId: meta?.containerId ?? '',
      hot: false,
      cpuCores: 0,
    });
  }
  return out;
}
