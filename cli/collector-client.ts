// Promise wrappers over the Query service, with gRPC errors turned into plain messages.
import * as grpc from '@grpc/grpc-js';
import {
  newQueryClient,
  type FleetRequest,
  type FleetResponse,
  type ListEpisodesRequest,
  type ListEpisodesResponse,
  type CollectorCredentials,
  type ListHostsResponse,
  type QueryClient,
  type QueryProfileRequest,
  type QueryProfileResponse,
  type RequestCaptureRequest,
  type RequestCaptureResponse,
} from '../proto/wire.js';

/** A failure the user should read as is (unknown host, empty range, collector down). */
export class CollectorRequestError extends Error {
  constructor(
    message: string,
    readonly code: grpc.status,
  ) {
    super(message);
    this.name = 'CollectorRequestError';
  }
}

function describe(address: string, err: grpc.ServiceError): CollectorRequestError {
  // The collector's own "the capture did not arrive in time" is not a transport failure.
  if (err.code === grpc.status.DEADLINE_EXCEEDED && err.details.startsWith('capture ')) return new CollectorRequestError(err.details, err.code);
  if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED) {
    return new CollectorRequestError(`cannot reach the collector at ${address}: ${err.details || err.message}`, err.code);
  }
  if (err.code === grpc.status.UNAUTHENTICATED || err.code === grpc.status.PERMISSION_DENIED) {
    return new CollectorRequestError(`the collector at ${address} refused the call: ${err.details || err.message}`, err.code);
  }
  return new CollectorRequestError(err.details || err.message, err.code);
}

export class CollectorClient {
  private readonly client: QueryClient;
  private readonly metadata: grpc.Metadata;

  /** Without credentials: plaintext and no token, as a loopback collector without auth expects. */
  constructor(
    private readonly address: string,
    credentials?: CollectorCredentials,
    private readonly timeoutMs = 30_000,
  ) {
    this.client = newQueryClient(address, credentials?.channel);
    this.metadata = credentials?.callMetadata ?? new grpc.Metadata();
  }

  private options(): grpc.CallOptions {
    return { deadline: Date.now() + this.timeoutMs };
  }

  listHosts(): Promise<ListHostsResponse> {
    return new Promise((resolve, reject) => {
      this.client.listHosts({}, this.metadata.clone(), this.options(), (err, res) =>
        err || !res ? reject(err ? describe(this.address, err) : new Error('empty response')) : resolve(res),
      );
    });
  }

  queryProfile(req: QueryProfileRequest): Promise<QueryProfileResponse> {
    return new Promise((resolve, reject) => {
      this.client.queryProfile(req, this.metadata.clone(), this.options(), (err, res) =>
        err || !res ? reject(err ? describe(this.address, err) : new Error('empty response')) : resolve(res),
      );
    });
  }

  listEpisodes(req: ListEpisodesRequest): Promise<ListEpisodesResponse> {
    return new Promise((resolve, reject) => {
      this.client.listEpisodes(req, this.metadata.clone(), this.options(), (err, res) =>
        err || !res ? reject(err ? describe(this.address, err) : new Error('empty response')) : resolve(res),
      );
    });
  }

  fleet(req: FleetRequest): Promise<FleetResponse> {
    return new Promise((resolve, reject) => {
      this.client.fleet(req, this.metadata.clone(), this.options(), (err, res) =>
        err || !res ? reject(err ? describe(this.address, err) : new Error('empty response')) : resolve(res),
      );
    });
  }

  /** Waits for the capture itself: the call's deadline is the capture's length plus `waitMs`. */
  requestCapture(req: RequestCaptureRequest, waitMs: number): Promise<RequestCaptureResponse> {
    return new Promise((resolve, reject) => {
      this.client.requestCapture(req, this.metadata.clone(), { deadline: Date.now() + req.durationSeconds * 1000 + waitMs }, (err, res) =>
        err || !res ? reject(err ? describe(this.address, err) : new Error('empty response')) : resolve(res),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}
