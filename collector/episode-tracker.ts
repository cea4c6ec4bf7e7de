// Folds each host's per-window verdicts into episodes: consecutive windows of
// one process (host, pid) with the same verdict and kind, kept in the store so
// a restarted collector carries on where it stopped.
//
// When an episode ends: an open episode of (host, pid) is closed by the first
// later window of that host that does not continue it, i.e. a window that
//   - classifies the pid differently (another verdict or kind, `idle`, or
//     another exe/comm: the pid was reused), or
//   - does not list the pid at all (it exited or is no longer hot), or
//   - starts a full window length or more after the episode's end (windows
//     are missing, e.g. the agent was down: the windows are not consecutive).
// The episode keeps the end of its last window. A host that goes silent (no
// agent connected, no window for SILENT_HOST_WINDOWS of its windows, at least
// MIN_SILENT_NS) has its open episodes closed by expireSilentHosts, so a dead or
// decommissioned host does not page forever; windows it sends later (from its
// spool) start new episodes.
import type { WindowUpload } from '../proto/wire.js';
import type { EpisodeChanges, ProfileStore } from './store.js';
import type { Episode, ProcessWindowVerdict } from './verdict-types.js';

/** A busy loop must last this many consecutive windows before anyone hears of it: no paging on one blip. */
export const MIN_BUSY_LOOP_WINDOWS = 2;

/** Whether queries list the episode and metrics show it as a busy loop. */
export function isReportedBusyLoop(e: Episode): boolean {
  return e.verdict === 'busy-loop' && e.windows >= MIN_BUSY_LOOP_WINDOWS;
}

/** The part of an upload the tracker needs: whose window it is, and when. */
export type TrackedWindow = Pick<WindowUpload, 'host' | 'startUnixNanos' | 'endUnixNanos'>;

export type EpisodeStore = Pick<ProfileStore, 'openEpisodes' | 'saveEpisodes'>;

/** Window lengths of silence after which a disconnected host's open episodes are closed. */
export const SILENT_HOST_WINDOWS = 3n;
/** The least silence that closes them, however short the windows. */
export const MIN_SILENT_NS = 120n * 1_000_000_000n;

export interface EpisodeTrackerOptions {
  store: EpisodeStore;
  /** Told of every episode a window opened, extended or closed, once that is committed. */
  onChange?: (episodes: readonly Episode[]) => void;
}

export class EpisodeTracker {
  /** Per host, the window being folded: the next one waits for it. */
  private readonly hostQueues = new Map<string, Promise<unknown>>();

  constructor(private readonly opts: EpisodeTrackerOptions) {}

  /**
   * Folds the verdicts of one window into its host's episodes and returns the
   * episodes it changed. Windows of a host must be given in time order; one
   * that ends no later than a process's open episode leaves that episode alone.
   */
  recordWindow(window: TrackedWindow, verdicts: readonly ProcessWindowVerdict[]): Promise<Episode[]> {
    // A reconnecting agent can briefly have two streams: each window must read what the previous one wrote.
    return this.serialize(window.host, () => this.apply(window, verdicts));
  }

  /** Runs `work` after everything queued for the host so far. */
  private serialize<T>(host: string, work: () => Promise<T>): Promise<T> {
    const previous = this.hostQueues.get(host) ?? Promise.resolve();
    const done = previous.then(work);
    const settled = done.then(
      () => undefined,
      () => undefined,
    );
    this.hostQueues.set(host, settled);
    void settled.then(() => {
      if (this.hostQueues.get(host) === settled) this.hostQueues.delete(host);
    });
    return done;
  }

  /**
   * Closes the open episodes of every host that has no agent connected and
   * whose last episode window ended long enough before nowNs; returns them.
   */
  async expireSilentHosts(nowNs: bigint, isConnected: (host: string) => boolean): Promise<Episode[]> {
    const byHost = new Map<string, Episode[]>();
    for (const e of await this.opts.store.openEpisodes()) byHost.set(e.host, [...(byHost.get(e.host) ?? []), e]);
    const closed: Episode[] = [];
    for (const [host, episodes] of byHost) {
      if (isConnected(host) || !episodes.every((e) => nowNs - e.endNs >= silenceLimitNs(e))) continue;
      // Through the host's queue, so a window arriving meanwhile is folded first or after, never in between.
      closed.push(...(await this.serialize(host, () => this.closeSilent(host, nowNs))));
    }
    return closed;
  }

  private async closeSilent(host: string, nowNs: bigint): Promise<Episode[]> {
    // Read again: a window may have extended them since.
    const stale = (await this.opts.store.openEpisodes(host)).filter((e) => nowNs - e.endNs >= silenceLimitNs(e));
    if (stale.length === 0) return [];
    const updated = stale.map((e) => ({ ...e, open: false, evidence: `${e.evidence} (closed: no window from ${host} since ${new Date(Number(e.endNs / 1_000_000n)).toISOString()})` }));
    await this.opts.store.saveEpisodes({ updated, opened: [] });
    this.opts.onChange?.(updated);
    return updated;
  }

  private async apply(window: TrackedWindow, verdicts: readonly ProcessWindowVerdict[]): Promise<Episode[]> {
    const changes = foldWindow(await this.opts.store.openEpisodes(window.host), window, verdicts);
    if (changes.updated.length === 0 && changes.opened.length === 0) return [];
    const opened = await this.opts.store.saveEpisodes(changes);
    const changed = [...changes.updated, ...opened];
    this.opts.onChange?.(changed);
    return changed;
  }
}

function foldWindow(open: readonly Episode[], window: TrackedWindow, verdicts: readonly ProcessWindowVerdict[]): EpisodeChanges {
  const byPid = new Map(verdicts.map((v) => [v.pid, v]));
  const updated: Episode[] = [];
  /** Pids whose open episode this window extends, or is too old to touch. */
  const settled = new Set<number>();
  for (const e of open) {
    if (e.endNs >= window.endUnixNanos) {
      settled.add(e.pid);
      continue;
    }
    const v = byPid.get(e.pid);
    if (v && continues(e, v, window)) {
      updated.push({ ...e, windows: e.windows + 1, endNs: window.endUnixNanos, score: Math.max(e.score, v.verdict.score), evidence: v.verdict.evidence });
      settled.add(e.pid);
    } else {
      updated.push({ ...e, open: false });
    }
  }
  const opened = [...byPid.values()]
    // `idle` ends an episode but starts none: a process that is not hot is not news.
    .filter((v) => v.verdict.verdict !== 'idle' && !settled.has(v.pid))
    .map(
      (v): Omit<Episode, 'id'> => ({
        host: window.host,
        pid: v.pid,
        comm: v.comm,
        exe: v.exe,
        verdict: v.verdict.verdict,
        kind: v.verdict.kind,
        score: v.verdict.score,
        startNs: window.startUnixNanos,
        endNs: window.endUnixNanos,
        windows: 1,
        evidence: v.verdict.evidence,
        open: true,
      }),
    );
  return { updated, opened };
}

/** How long an episode's host must be silent before the episode is closed: a few of its windows. */
function silenceLimitNs(e: Episode): bigint {
  const windowNs = (e.endNs - e.startNs) / BigInt(Math.max(e.windows, 1));
  return windowNs * SILENT_HOST_WINDOWS > MIN_SILENT_NS ? windowNs * SILENT_HOST_WINDOWS : MIN_SILENT_NS;
}

function continues(e: Episode, v: ProcessWindowVerdict, window: TrackedWindow): boolean {
  const windowNs = window.endUnixNanos - window.startUnixNanos;
  return (
    v.verdict.verdict === e.verdict &&
    v.verdict.kind === e.kind &&
    v.exe === e.exe &&
    v.comm === e.comm &&
    window.startUnixNanos - e.endNs < windowNs
  );
}
