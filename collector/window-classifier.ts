// Classifies every process of one stored window: hot ones by their signals and
// samples, the others as idle.
import type { Profile } from '../proto/pprof.js';
import type { WindowUpload } from '../proto/wire.js';
import { classifyHotProcess, idleVerdict } from './busy-loop-classifier.js';
import { sampleStatsByPid } from './sample-stats.js';
import type { ProcessWindowVerdict } from './verdict-types.js';

/** Verdicts for every process the agent listed: hot ones classified, the rest `idle`. */
export function classifyWindow(upload: WindowUpload, profile: Profile): ProcessWindowVerdict[] {
  const stats = sampleStatsByPid(profile);
  return upload.processes.map((p) => ({
    host: upload.host,
    pid: p.pid,
    comm: p.comm,
    exe: p.exe,
    windowStartNs: upload.startUnixNanos,
    windowEndNs: upload.endUnixNanos,
    verdict: p.hot ? classifyHotProcess(p, stats.get(p.pid)) : idleVerdict(p),
  }));
}
