// Where the collector keeps profile windows. One interface so a second backend
// (ClickHouse) can sit beside SQLite; methods return Promises because that one
// will be asynchronous even though SQLite is not.
import type { HostSummary, WindowUpload } from '../proto/wire.js';

/** A window as stored: the upload's identity, times and pprof, without its process list. */
export interface StoredWindow {
  id: number;
  host: string;
  agentId: string;
  seq: number;
  startNs: bigint;
  endNs: bigint;
  /** Collector wall-clock time at which the window was committed. */
  receivedNs: bigint;
  pprofGz: Buffer;
  /** Total of the window's samples/count values. */
  sampleCount: number;
}

export interface PutResult {
  /** (agentId, seq) was already stored; nothing was written. */
  duplicate: boolean;
}

export interface ProfileStore {
  /** Resolves once the window and its processes are committed; rejects if they were not. */
  putWindow(window: WindowUpload, sampleCount: number): Promise<PutResult>;
  /** Every host with at least one window, ordered by name. */
  listHosts(): Promise<HostSummary[]>;
  hasHost(host: string): Promise<boolean>;
  /** Windows of one host overlapping [fromNs, toNs], oldest first, read a page at a time. */
  windowsFor(host: string, fromNs: bigint, toNs: bigint): AsyncIterable<StoredWindow>;
  close(): Promise<void>;
}
