// hotloop.v1 messages as typed data, and the gRPC service definitions that
// serialize them with protobufjs (see hotloop/v1/hotloop.proto).
import * as grpc from '@grpc/grpc-js';
import { codecFor, type CodecOptions, type MessageCodec } from './codec.js';

export interface ProcessInfo {
  pid: number;
  comm: string;
  exe: string;
  cmdline: string;
  cgroup: string;
  containerId: string;
  hot: boolean;
  cpuCores: number;
  /** Set for hot processes only. */
  signals?: ProcessSignals | null;
}

export interface ProcessSignals {
  voluntarySwitchesPerSec: number;
  involuntarySwitchesPerSec: number;
  timeslicesPerSec: number;
  runQueueWaitShare: number;
  readSyscallsPerSec: number;
  writeSyscallsPerSec: number;
  readBytesPerSec: number;
  writeBytesPerSec: number;
  syscallRateMeasured: boolean;
  syscallsPerSec: number;
  syscallSlice?: SyscallSlice | null;
  /** Share of user-space leaf samples on or right after a `pause`. */
  spinHintShare: number;
}

export interface SyscallSlice {
  seconds: number;
  syscalls: number;
  eagain: number;
  waitCalls: number;
  waitReturnedZero: number;
  waitImmediate: number;
  waitZeroTimeout: number;
  schedYield: number;
  futexCalls: number;
  futexEagain: number;
  rwCalls: number;
  rwMovedCalls: number;
  rwBytes: number;
}

export interface AgentCost {
  cpuSeconds: number;
  signalsCpuSeconds: number;
  rssBytes: number;
}

export interface WindowUpload {
  host: string;
  agentId: string;
  seq: number;
  startUnixNanos: bigint;
  endUnixNanos: bigint;
  pprofGz: Buffer;
  processes: ProcessInfo[];
  cost?: AgentCost | null;
  /** Set (non-empty) when the window answers an on-demand capture request. */
  captureRequestId?: string;
}

export interface AgentHello {
  host: string;
  agentId: string;
  version: string;
}

export interface CaptureFailure {
  requestId: string;
  reason: string;
}

export interface AgentMessage {
  hello?: AgentHello | null;
  window?: WindowUpload | null;
  captureFailed?: CaptureFailure | null;
}

export interface UploadAck {
  agentId: string;
  seq: number;
  stored: boolean;
  duplicate: boolean;
  error: string;
  /** Non-zero: a temporary refusal; resend the window after this many ms. */
  retryAfterMs: number;
}

/** CaptureProgram in hotloop.proto; a request may carry any int32 here, so validate before use. */
export const CaptureProgram = { UNSPECIFIED: 0, ONCPU: 1 } as const;

export interface CaptureRequest {
  requestId: string;
  program: number;
  durationSeconds: number;
  frequencyHz: number;
  /** 0 = every process on the host. */
  pid: number;
}

export interface CollectorMessage {
  ack?: UploadAck | null;
  capture?: CaptureRequest | null;
}

export type ListHostsRequest = Record<string, never>;

export interface HostSummary {
  host: string;
  firstUnixNanos: bigint;
  lastUnixNanos: bigint;
  windows: number;
}

export interface ListHostsResponse {
  hosts: HostSummary[];
}

export interface QueryProfileRequest {
  host: string;
  fromUnixNanos: bigint;
  toUnixNanos: bigint;
  pid: number;
  comm: string;
  /** Set: that on-demand capture's profile instead of the continuous windows. */
  captureRequestId?: string;
}

export interface QueryProfileResponse {
  pprofGz: Buffer;
  windows: number;
  samples: number;
}

export interface ListEpisodesRequest {
  /** Empty = every host. */
  host: string;
  fromUnixNanos: bigint;
  toUnixNanos: bigint;
}

export interface ProcessEpisode {
  host: string;
  pid: number;
  comm: string;
  exe: string;
  verdict: string;
  kind: string;
  score: number;
  startUnixNanos: bigint;
  endUnixNanos: bigint;
  windows: number;
  evidence: string;
  open: boolean;
  recurrences: number;
  historySinceUnixNanos: bigint;
  historyPids: number;
}

export interface ListEpisodesResponse {
  episodes: ProcessEpisode[];
}

export interface FleetRequest {
  fromUnixNanos: bigint;
  toUnixNanos: bigint;
}

export interface ServiceFleet {
  exe: string;
  comm: string;
  busyLoopingHosts: string[];
  hostsRunning: number;
}

export interface FleetResponse {
  services: ServiceFleet[];
}

export interface RequestCaptureRequest {
  host: string;
  durationSeconds: number;
  frequencyHz: number;
  /** 0 = every process on the host. */
  pid: number;
}

export interface RequestCaptureResponse {
  requestId: string;
  pprofGz: Buffer;
  samples: number;
  startUnixNanos: bigint;
  endUnixNanos: bigint;
}

const WIDE_TIMES = new Set([
  'startUnixNanos',
  'endUnixNanos',
  'firstUnixNanos',
  'lastUnixNanos',
  'fromUnixNanos',
  'toUnixNanos',
  'historySinceUnixNanos',
]);
const codec = <T>(name: string, options?: CodecOptions): MessageCodec<T> => codecFor<T>(`hotloop.v1.${name}`, WIDE_TIMES, options);

export const codecs = {
  agentMessage: codec<AgentMessage>('AgentMessage'),
  // The agent refuses capture requests with fields it does not know, so it must see them.
  collectorMessage: codec<CollectorMessage>('CollectorMessage', { reportUnknownFields: true }),
  windowUpload: codec<WindowUpload>('WindowUpload'),
  listHostsRequest: codec<ListHostsRequest>('ListHostsRequest'),
  listHostsResponse: codec<ListHostsResponse>('ListHostsResponse'),
  queryProfileRequest: codec<QueryProfileRequest>('QueryProfileRequest'),
  queryProfileResponse: codec<QueryProfileResponse>('QueryProfileResponse'),
  listEpisodesRequest: codec<ListEpisodesRequest>('ListEpisodesRequest'),
  listEpisodesResponse: codec<ListEpisodesResponse>('ListEpisodesResponse'),
  fleetRequest: codec<FleetRequest>('FleetRequest'),
  fleetResponse: codec<FleetResponse>('FleetResponse'),
  requestCaptureRequest: codec<RequestCaptureRequest>('RequestCaptureRequest'),
  requestCaptureResponse: codec<RequestCaptureResponse>('RequestCaptureResponse'),
};

function method<Req, Res>(
  service: string,
  name: string,
  req: MessageCodec<Req>,
  res: MessageCodec<Res>,
  streams: { request: boolean; response: boolean },
): grpc.MethodDefinition<Req, Res> {
  return {
    path: `/hotloop.v1.${service}/${name}`,
    requestStream: streams.request,
    responseStream: streams.response,
    requestSerialize: (m: Req) => req.encode(m),
    requestDeserialize: (b: Buffer) => req.decode(b),
    responseSerialize: (m: Res) => res.encode(m),
    responseDeserialize: (b: Buffer) => res.decode(b),
    originalName: name,
  };
}

export const agentGatewayService = {
  connect: method('AgentGateway', 'Connect', codecs.agentMessage, codecs.collectorMessage, { request: true, response: true }),
};

export const queryService = {
  listHosts: method('Query', 'ListHosts', codecs.listHostsRequest, codecs.listHostsResponse, { request: false, response: false }),
  queryProfile: method('Query', 'QueryProfile', codecs.queryProfileRequest, codecs.queryProfileResponse, {
    request: false,
    response: false,
  }),
  listEpisodes: method('Query', 'ListEpisodes', codecs.listEpisodesRequest, codecs.listEpisodesResponse, { request: false, response: false }),
  fleet: method('Query', 'Fleet', codecs.fleetRequest, codecs.fleetResponse, { request: false, response: false }),
  requestCapture: method('Query', 'RequestCapture', codecs.requestCaptureRequest, codecs.requestCaptureResponse, { request: false, response: false }),
};

export interface AgentGatewayClient extends grpc.Client {
  connect(metadata?: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<AgentMessage, CollectorMessage>;
}

export interface QueryClient extends grpc.Client {
  listHosts(req: ListHostsRequest, cb: grpc.requestCallback<ListHostsResponse>): grpc.ClientUnaryCall;
  listHosts(
    req: ListHostsRequest,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    cb: grpc.requestCallback<ListHostsResponse>,
  ): grpc.ClientUnaryCall;
  queryProfile(req: QueryProfileRequest, cb: grpc.requestCallback<QueryProfileResponse>): grpc.ClientUnaryCall;
  queryProfile(
    req: QueryProfileRequest,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    cb: grpc.requestCallback<QueryProfileResponse>,
  ): grpc.ClientUnaryCall;
  listEpisodes(req: ListEpisodesRequest, cb: grpc.requestCallback<ListEpisodesResponse>): grpc.ClientUnaryCall;
  listEpisodes(
    req: ListEpisodesRequest,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    cb: grpc.requestCallback<ListEpisodesResponse>,
  ): grpc.ClientUnaryCall;
  fleet(req: FleetRequest, cb: grpc.requestCallback<FleetResponse>): grpc.ClientUnaryCall;
  fleet(req: FleetRequest, metadata: grpc.Metadata, options: grpc.CallOptions, cb: grpc.requestCallback<FleetResponse>): grpc.ClientUnaryCall;
  requestCapture(req: RequestCaptureRequest, cb: grpc.requestCallback<RequestCaptureResponse>): grpc.ClientUnaryCall;
  requestCapture(
    req: RequestCaptureRequest,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    cb: grpc.requestCallback<RequestCaptureResponse>,
  ): grpc.ClientUnaryCall;
}

const AgentGatewayClientCtor = grpc.makeGenericClientConstructor(agentGatewayService, 'AgentGateway');
const QueryClientCtor = grpc.makeGenericClientConstructor(queryService, 'Query');

/** Messages above this size are refused on both sides (pprof windows are far smaller). */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

const clientOptions: grpc.ClientOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_permit_without_calls': 1,
};

/** How a client proves itself to the collector: the channel (TLS or plaintext) and metadata sent with every call (the bearer token). */
export interface CollectorCredentials {
  channel: grpc.ChannelCredentials;
  callMetadata: grpc.Metadata;
}

export function newAgentGatewayClient(address: string, creds = grpc.credentials.createInsecure()): AgentGatewayClient {
  return new AgentGatewayClientCtor(address, creds, clientOptions) as unknown as AgentGatewayClient;
}

export function newQueryClient(address: string, creds = grpc.credentials.createInsecure()): QueryClient {
  return new QueryClientCtor(address, creds, clientOptions) as unknown as QueryClient;
}
