// Where the collector keeps profile windows. One interface so a second backend
// (ClickHouse) can sit beside SQLite; methods return Promises because that one
// will be asynchronous even though SQLite is not.
import type { HostSummary, WindowUpload } from '../proto/wire.js';
import type { Episode } from './verdict-types.js';

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

/** What one window changed in the episodes of its host, written in one transaction. */
export interface EpisodeChanges {
  /** Existing episodes, extended or closed. */
  updated: Episode[];
  /** Episodes the window opened; the store assigns their ids. */
  opened: Omit<Episode, 'id'>[];
}

export interface EpisodeQuery {
  /** Empty = every host. */
  host: string;
  /** Episodes overlapping [fromNs, toNs]. */
  fromNs: bigint;
  toNs: bigint;
  /** Busy-loop episodes shorter than this are blips: neither listed nor counted as recurrences. */
  minBusyLoopWindows: number;
  /** How far before an episode's start earlier busy loops of its service count as recurrences. */
  recurrenceLookbackNs: bigint;
}

/** An episode linked to the earlier busy loops of its service (exe + comm) on its host. */
export interface EpisodeWithHistory extends Episode {
  /** Earlier busy-loop episodes of the service on the host, started within the look-back. */
  recurrences: number;
  /** Start of the earliest of those; the episode's own start when there are none. */
  historySinceNs: bigint;
  /** Distinct pids over those episodes and this one: one per restart. */
  historyPids: number;
}

/** One service (exe + comm) across the fleet over a time range. */
export interface ServiceFleet {
  exe: string;
  comm: string;
  /** Hosts with a busy-loop episode of the service in the range, by name. */
  busyLoopingHosts: string[];
  /** Hosts whose windows in the range list a process of the service. */
  hostsRunning: number;
}

/** Rows one retention batch deleted. */
export interface RetentionBatch {
  windows: number;
  captures: number;
  episodes: number;
}

export interface ProfileStore {
  /** Resolves once the window and its processes are committed; rejects if they were not. */
  putWindow(window: WindowUpload, sampleCount: number): Promise<PutResult>;
  /** Stores an on-demand capture apart from the windows; the same (agentId, seq) or request id again is a duplicate. */
  putCapture(capture: WindowUpload, requestId: string, sampleCount: number): Promise<PutResult>;
  /** The stored capture that answered this request of this host. */
  captureFor(host: string, requestId: string): Promise<StoredWindow | undefined>;
  /** Every host with at least one window, ordered by name. */
  listHosts(): Promise<HostSummary[]>;
  hasHost(host: string): Promise<boolean>;
  /** Windows of one host overlapping [fromNs, toNs], oldest first, read a page at a time. */
  windowsFor(host: string, fromNs: bigint, toNs: bigint): AsyncIterable<StoredWindow>;
  /** Open episodes of one host, or of every host when `host` is omitted. */
  openEpisodes(host?: string): Promise<Episode[]>;
  /** Resolves with the opened episodes, ids assigned, once every change is committed. */
  saveEpisodes(changes: EpisodeChanges): Promise<Episode[]>;
  /** Episodes overlapping the range, by host, start and pid. */
  episodesIn(query: EpisodeQuery): Promise<EpisodeWithHistory[]>;
  /** Services with a busy-loop episode (of at least `minBusyLoopWindows`) overlapping [fromNs, toNs]. */
  fleetIn(fromNs: bigint, toNs: bigint, minBusyLoopWindows: number): Promise<ServiceFleet[]>;
  /**
   * One bounded batch of retention: deletes up to `limit` windows and up to
   * `limit` captures that started before cutoffNs (keeping the hosts summary
   * right) and up to `limit` closed episodes that ended before it. Small batches keep each commit short.
   */
  deleteBatchBefore(cutoffNs: bigint, limit: number): Promise<RetentionBatch>;
  close(): Promise<void>;
}
