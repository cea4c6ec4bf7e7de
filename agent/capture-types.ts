// What a capture backend (bpftrace, or perf as fallback) hands to the rest of
// the agent: stacks as raw addresses, counted in the kernel and read out once
// per window. Symbolization happens later, in symbolizer.ts.

/** One distinct stack and how many times it was sampled in the window. */
export interface RawStack {
  pid: number;
  tid: number;
  /** Kernel return addresses, leaf first; empty when the sample hit user space. */
  kernel: bigint[];
  /** User return addresses, leaf first; empty for kernel threads. */
  user: bigint[];
  count: number;
}

export interface CapturedWindow {
  /** CLOCK_MONOTONIC time (ns) at which the backend read the window out. */
  endMonotonicNs: bigint;
  stacks: RawStack[];
  /** Thread names (comm of each sampled tid) as the kernel saw them. */
  threadNames: Map<number, string>;
}

export interface CaptureBackend {
  readonly name: 'bpftrace' | 'perf';
  /** Starts sampling; onWindow is called once per finished window. */
  start(onWindow: (window: CapturedWindow) => void): void;
  /** Delivers the partial window in progress through onWindow, stops sampling, and resolves once the child has exited. */
  stop(): Promise<void>;
}
