// Handlers of the Query service: list hosts, merge a host's windows over a
// time range into one pprof, list busy-loop episodes and their fleet view,
// and run on-demand captures through the capture broker.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { captureNumbersProblem } from '../proto/capture-limits.js';
import { decodeProfile, encodeProfileGz, type Profile } from '../proto/pprof.js';
import {
  MAX_MESSAGE_BYTES,
  type FleetRequest,
  type FleetResponse,
  type ListEpisodesRequest,
  type ListEpisodesResponse,
  type ListHostsRequest,
  type ListHostsResponse,
  type QueryProfileRequest,
  type QueryProfileResponse,
  type RequestCaptureRequest,
  type RequestCaptureResponse,
} from '../proto/wire.js';
import type { CaptureBroker } from './capture-broker.js';
import { MIN_BUSY_LOOP_WINDOWS } from './episode-tracker.js';
import { ProfileMerger } from './profile-merge.js';
import { StatusError } from './status-error.js';
import type { ProfileStore, StoredWindow } from './store.js';

export interface QueryApiOptions {
  store: ProfileStore;
  captures: Pick<CaptureBroker, 'request'>;
  log: Logger;
}

/**
 * How far back an episode's earlier busy loops of the same service count as
 * recurrences: fixed rather than the queried range, so an episode's count does
 * not change with the range it is looked at through.
 */
export const RECURRENCE_LOOKBACK_NS = 24n * 3600n * 1_000_000_000n;

/** Hosts named in an unknown-host error; a fleet's full list would drown the message. */
const KNOWN_HOSTS_SHOWN = 10;

/** Handlers to register with `server.addService(queryService, ...)`. */
export function queryApi(opts: QueryApiOptions): grpc.UntypedServiceImplementation {
  return {
    listHosts: unary<ListHostsRequest, ListHostsResponse>(opts.log, 'ListHosts', async () => ({ hosts: await opts.store.listHosts() })),
    queryProfile: unary<QueryProfileRequest, QueryProfileResponse>(opts.log, 'QueryProfile', (req) => queryProfile(opts.store, req)),
    listEpisodes: unary<ListEpisodesRequest, ListEpisodesResponse>(opts.log, 'ListEpisodes', (req) => listEpisodes(opts.store, req)),
    fleet: unary<FleetRequest, FleetResponse>(opts.log, 'Fleet', (req) => fleet(opts.store, req)),
    requestCapture: unary<RequestCaptureRequest, RequestCaptureResponse>(opts.log, 'RequestCapture', (req) => requestCapture(opts.captures, req)),
  };
}

function unary<Req, Res>(log: Logger, name: string, handle: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    handle(call.request).then(
      (res) => callback(null, res),
      (err: unknown) => {
        if (err instanceof StatusError) {
          callback({ code: err.code, details: err.message });
          return;
        }
        log.error({ err, method: name }, 'query failed');
        callback({ code: grpc.status.INTERNAL, details: `${name} failed: ${err instanceof Error ? err.message : String(err)}` });
      },
    );
  };
}

function checkRange(req: { fromUnixNanos: bigint; toUnixNanos: bigint }): void {
  if (req.toUnixNanos < req.fromUnixNanos) {
    throw new StatusError(grpc.status.INVALID_ARGUMENT, `range ends (${formatNs(req.toUnixNanos)}) before it starts (${formatNs(req.fromUnixNanos)})`);
  }
}

async function queryProfile(store: ProfileStore, req: QueryProfileRequest): Promise<QueryProfileResponse> {
  if (!req.host) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'host is required');
  const captureId = req.captureRequestId ?? '';
  if (captureId === '') checkRange(req);
  const merger = new ProfileMerger({ pid: req.pid, comm: req.comm });
  let what: string;
  if (captureId !== '') {
    const capture = await store.captureFor(req.host, captureId);
    if (!capture) throw new StatusError(grpc.status.NOT_FOUND, `host ${req.host} has no stored capture ${captureId} (still running, never made, or past retention)`);
    merger.add(decodeStored(capture, `capture ${captureId}`), { startNs: capture.startNs, endNs: capture.endNs });
    what = `capture ${captureId}`;
  } else {
    if (!(await store.hasHost(req.host))) throw new StatusError(grpc.status.NOT_FOUND, await unknownHostMessage(store, req.host));
    const range = `[${formatNs(req.fromUnixNanos)}, ${formatNs(req.toUnixNanos)}]`;
    let overlapping = 0;
    for await (const w of store.windowsFor(req.host, req.fromUnixNanos, req.toUnixNanos)) {
      overlapping++;
      merger.add(decodeStored(w, `window ${w.id}`), { startNs: w.startNs, endNs: w.endNs });
    }
    if (overlapping === 0) throw new StatusError(grpc.status.NOT_FOUND, `host ${req.host} has no windows in ${range}`);
    what = `${overlapping} windows in ${range}`;
  }
  const merged = merger.result();
  if (!merged) throw new StatusError(grpc.status.NOT_FOUND, `host ${req.host} has ${what} but no samples of ${describeFilter(req)}`);
  const pprofGz = encodeProfileGz(merged);
  if (pprofGz.length > MAX_MESSAGE_BYTES) {
    throw new StatusError(
      grpc.status.RESOURCE_EXHAUSTED,
      `merged profile is ${pprofGz.length} bytes, over the ${MAX_MESSAGE_BYTES}-byte message limit; narrow the range or filter by pid/comm`,
    );
  }
  return { pprofGz, windows: merger.windows, samples: merger.samples };
}

function decodeStored(w: StoredWindow, name: string): Profile {
  try {
    return decodeProfile(w.pprofGz);
  } catch (err) {
    // Uploads are validated before they are stored, so this is corruption at rest.
    throw new StatusError(grpc.status.DATA_LOSS, `stored ${name} (agent ${w.agentId} seq ${w.seq}) is unreadable: ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function requestCapture(captures: Pick<CaptureBroker, 'request'>, req: RequestCaptureRequest): Promise<RequestCaptureResponse> {
  if (!req.host) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'host is required');
  const problem = captureNumbersProblem(req);
  if (problem) throw new StatusError(grpc.status.INVALID_ARGUMENT, problem);
  return captures.request(req);
}

async function listEpisodes(store: ProfileStore, req: ListEpisodesRequest): Promise<ListEpisodesResponse> {
  checkRange(req);
  if (req.host && !(await store.hasHost(req.host))) throw new StatusError(grpc.status.NOT_FOUND, await unknownHostMessage(store, req.host));
  const episodes = await store.episodesIn({
    host: req.host,
    fromNs: req.fromUnixNanos,
    toNs: req.toUnixNanos,
    minBusyLoopWindows: MIN_BUSY_LOOP_WINDOWS,
    recurrenceLookbackNs: RECURRENCE_LOOKBACK_NS,
  });
  return {
    episodes: episodes.map((e) => ({
      host: e.host,
      pid: e.pid,
      comm: e.comm,
      exe: e.exe,
      verdict: e.verdict,
      kind: e.kind,
      score: e.score,
      startUnixNanos: e.startNs,
      endUnixNanos: e.endNs,
      windows: e.windows,
      evidence: e.evidence,
      open: e.open,
      recurrences: e.recurrences,
      historySinceUnixNanos: e.historySinceNs,
      historyPids: e.historyPids,
    })),
  };
}

async function fleet(store: ProfileStore, req: FleetRequest): Promise<FleetResponse> {
  checkRange(req);
  const services = await store.fleetIn(req.fromUnixNanos, req.toUnixNanos, MIN_BUSY_LOOP_WINDOWS);
  services.sort((a, b) => b.busyLoopingHosts.length - a.busyLoopingHosts.length || a.exe.localeCompare(b.exe) || a.comm.localeCompare(b.comm));
  return { services };
}

async function unknownHostMessage(store: ProfileStore, host: string): Promise<string> {
  const known = (await store.listHosts()).map((h) => h.host);
  if (known.length === 0) return `unknown host ${host} (no host has uploaded a window yet)`;
  const shown = known.slice(0, KNOWN_HOSTS_SHOWN).join(', ');
  const more = known.length > KNOWN_HOSTS_SHOWN ? ` and ${known.length - KNOWN_HOSTS_SHOWN} more` : '';
  return `unknown host ${host} (known: ${shown}${more})`;
}

function describeFilter(req: QueryProfileRequest): string {
  const parts = [req.pid !== 0 ? `pid ${req.pid}` : '', req.comm !== '' ? `comm ${JSON.stringify(req.comm)}` : ''].filter(Boolean);
  return parts.length > 0 ? parts.join(' and ') : 'any process';
}

/** ISO time with the nanoseconds kept, so a message names the exact bound the caller sent. */
function formatNs(ns: bigint): string {
  const second = 1_000_000_000n;
  const seconds = ns / second - (ns % second < 0n ? 1n : 0n);
  const fraction = (ns - seconds * second).toString().padStart(9, '0');
  // Every int64 of nanoseconds (years 1677..2262) is within Date's range.
  return new Date(Number(seconds) * 1000).toISOString().replace(/\.000Z$/, `.${fraction}Z`);
}
