// The busy-loop classification's vocabulary, shared by the classifier, the
// episode tracker, the store and the query side.

export type BusyLoopKind = 'poll-no-progress' | 'eagain-spin' | 'yield-spin' | 'futex-spin' | 'user-spin' | 'runtime-spin';
export type WorkingKind = 'compute' | 'io';

export type VerdictClass =
  | { verdict: 'busy-loop'; kind: BusyLoopKind }
  | { verdict: 'working'; kind: WorkingKind }
  | { verdict: 'idle'; kind: '' };

/** One process in one window, classified. */
export type WindowVerdict = VerdictClass & {
  /** Confidence in [0, 1]. */
  score: number;
  /** Human-readable, with the numbers behind it. */
  evidence: string;
};

/** A classified process-window as the collector keeps it. */
export interface ProcessWindowVerdict {
  host: string;
  pid: number;
  comm: string;
  exe: string;
  windowStartNs: bigint;
  windowEndNs: bigint;
  verdict: WindowVerdict;
}

/** Consecutive windows of one process (host, pid) with the same verdict and kind. */
export interface Episode {
  id: number;
  host: string;
  pid: number;
  comm: string;
  exe: string;
  verdict: VerdictClass['verdict'];
  kind: VerdictClass['kind'];
  /** Highest window score so far. */
  score: number;
  startNs: bigint;
  endNs: bigint;
  windows: number;
  /** Evidence of the most recent window. */
  evidence: string;
  /** Still open: its last window is the process's latest. */
  open: boolean;
}
