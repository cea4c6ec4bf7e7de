// Starts the collector: the SQLite store, the gRPC port (AgentGateway + Query)
// and the HTTP port, and stops them in an order that loses no acked window.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { agentGatewayService, MAX_MESSAGE_BYTES, queryService } from '../proto/wire.js';
import { AgentGateway, type ConnectedAgent } from './agent-gateway.js';
import { CaptureBroker } from './capture-broker.js';
import { authInterceptor, BearerTokens, certificateHostProblem, type RoleTokens } from './auth.js';
import { EpisodeTracker } from './episode-tracker.js';
import { startHttpServer } from './http-server.js';
import { formatListenAddress, parseListenAddress } from './listen-address.js';
import { checkListenPolicy } from './listen-policy.js';
import { CollectorMetrics } from './metrics.js';
import { PeriodicTask } from './periodic-task.js';
import { queryApi } from './query-api.js';
import { DEFAULT_RETENTION_NS, Retention } from './retention.js';
import { serverCredentials, type ServerTls } from './server-credentials.js';
import { SqliteStore } from './sqlite-store.js';
import { DEFAULT_UPLOAD_LIMITS, validateUploadLimits, type UploadLimits } from './upload-limits.js';

export interface CollectorOptions {
  /** Directory for hotloop.sqlite; created if missing. */
  dataDir: string;
  /** host:port for gRPC (agents and queries); port 0 picks a free one. */
  grpcAddress: string;
  /** host:port for /healthz and /metrics; port 0 picks a free one. */
  httpAddress: string;
  log: Logger;
  /** Without tokens, every call is allowed and both ports must be on loopback. */
  security?: CollectorSecurity;
  /** Defaults: DEFAULT_UPLOAD_LIMITS. */
  limits?: Partial<UploadLimits>;
  /** Windows and closed episodes older than this are deleted in the background; default 7 days. */
  retentionNs?: bigint;
  /** When the episodes of silent, disconnected hosts are checked: first after start-up (agents reconnect and drain their spools), then periodically. */
  silentHostCheck?: { firstAfterMs: number; everyMs: number };
}

const DEFAULT_SILENT_HOST_CHECK = { firstAfterMs: 5 * 60_000, everyMs: 30_000 };

export interface CollectorSecurity {
  /** One bearer token per role; each gRPC call must carry its method's. */
  tokens?: RoleTokens;
  /** TLS on the gRPC port; with a client CA, agents' certificates must also name their host. */
  tls?: ServerTls;
}

export interface RunningCollector {
  /** host:port actually bound. */
  grpcAddress: string;
  /** host:port actually bound. */
  httpAddress: string;
  /** Agents with an open Connect stream, by host. */
  connectedAgents(): ReadonlyMap<string, ConnectedAgent>;
  close(): Promise<void>;
}

const serverOptions: grpc.ServerOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  // Agent streams live for days: ping them so a vanished host leaves connectedAgents().
  'grpc.keepalive_time_ms': 60_000,
  'grpc.keepalive_timeout_ms': 20_000,
};

export async function startCollector(opts: CollectorOptions): Promise<RunningCollector> {
  const log = opts.log;
  const tokens = opts.security?.tokens ? new BearerTokens(opts.security.tokens) : null;
  const tls = opts.security?.tls;
  checkListenPolicy({ grpcAddress: opts.grpcAddress, httpAddress: opts.httpAddress, tokens: tokens !== null, tls: tls !== undefined });
  const credentials = serverCredentials(tls);
  const limits: UploadLimits = { ...DEFAULT_UPLOAD_LIMITS, ...opts.limits };
  validateUploadLimits(limits);
  mkdirSync(opts.dataDir, { recursive: true });
  const dbFile = path.join(opts.dataDir, 'hotloop.sqlite');
  const store = new SqliteStore(dbFile);
  const metrics = new CollectorMetrics();
  // Episodes still open when the collector last stopped are still open now.
  metrics.observeEpisodes(await store.openEpisodes());
  const episodes = new EpisodeTracker({ store, onChange: (changed) => metrics.observeEpisodes(changed) });
  // The broker reaches agents through the gateway, which tells it what they upload.
  const captures: CaptureBroker = new CaptureBroker({
    agentFor: (host) => gateway.connectedAgents().get(host),
    log: log.child({ component: 'captures' }),
    onOutcome: (outcome) => metrics.captureEnded(outcome),
  });
  const gateway = new AgentGateway({
    store,
    episodes,
    captures,
    log: log.child({ component: 'agent-gateway' }),
    metrics,
    limits,
    ...(tls?.clientCa ? { certificateHostProblem } : {}),
  });
  const server = new grpc.Server({ ...serverOptions, interceptors: tokens ? [authInterceptor(tokens, log.child({ component: 'auth' }))] : [] });
  server.addService(agentGatewayService, gateway.implementation);
  server.addService(queryService, queryApi({ store, captures, log: log.child({ component: 'query' }) }));

  let grpcAddress: string;
  let http: Awaited<ReturnType<typeof startHttpServer>>;
  try {
    grpcAddress = await bindGrpc(server, opts.grpcAddress, credentials);
    http = await startHttpServer({ address: opts.httpAddress, metrics, log: log.child({ component: 'http' }) });
  } catch (err) {
    server.forceShutdown();
    await store.close();
    throw err;
  }
  const retention = new Retention({
    store,
    maxAgeNs: opts.retentionNs ?? DEFAULT_RETENTION_NS,
    log: log.child({ component: 'retention' }),
    onDeleted: (batch) => {
      metrics.retentionDeletedRows('windows', batch.windows);
      metrics.retentionDeletedRows('captures', batch.captures);
      metrics.retentionDeletedRows('episodes', batch.episodes);
    },
  });
  retention.start();
  const silentCheck = opts.silentHostCheck ?? DEFAULT_SILENT_HOST_CHECK;
  const silentHosts = new PeriodicTask({
    run: async () => {
      const closed = await episodes.expireSilentHosts(BigInt(Date.now()) * 1_000_000n, (host) => gateway.connectedAgents().has(host));
      if (closed.length > 0) log.info({ episodes: closed.map((e) => `${e.host}/${e.comm}/${e.pid}`) }, 'closed the open episodes of hosts that went silent');
    },
    firstAfterMs: silentCheck.firstAfterMs,
    everyMs: silentCheck.everyMs,
    log,
    failureMessage: 'closing the episodes of silent hosts failed',
  });
  silentHosts.start();
  log.info({ grpc: grpcAddress, http: http.address, db: dbFile, retentionSeconds: Number((opts.retentionNs ?? DEFAULT_RETENTION_NS) / 1_000_000_000n), auth: tokens !== null, tls: tls !== undefined, mutualTls: tls?.clientCa !== undefined }, 'collector started');

  return {
    grpcAddress,
    httpAddress: http.address,
    connectedAgents: () => gateway.connectedAgents(),
    async close() {
      // Refuse new calls first, then let every agent stream ack what it is storing
      // and end; tryShutdown completes once in-flight queries finish too.
      const drained = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      captures.close();
      await gateway.close();
      await drained;
      await http.close();
      await silentHosts.stop();
      await retention.stop();
      await store.close();
      log.info('collector stopped');
    },
  };
}

async function bindGrpc(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<string> {
  const { host } = parseListenAddress(address);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(address, credentials, (err, bound) => (err ? reject(err) : resolve(bound))));
  return formatListenAddress({ host, port });
}
