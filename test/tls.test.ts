// TLS and mutual TLS on the gRPC port, with a CA and certificates made by
// openssl for this test, over real connections to 127.0.0.1.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { Uploader } from '../agent/uploader.js';
import { MemoryWindowQueue } from './helpers/memory-window-queue.js';
import { loadClientCredentials } from '../cli/client-credentials.js';
import { startCollector, type RunningCollector } from '../collector/collector.js';
import { newAgentGatewayClient, newQueryClient, type UploadAck } from '../proto/wire.js';
import { AgentStreamSession, bearer, windowOf } from './helpers/agent-stream.js';
import { freePort, runHotloop, startHotloop, stopProcess, tempDir, waitFor } from './helpers/processes.js';
import { agentClientCert, issueCert, loopbackServerCert, makeCa, type PemPair } from './helpers/test-pki.js';
import { newToken, writeTokenFile } from './helpers/tokens.js';

const silent = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const dir = tempDir('tls');
const tokens = { agent: newToken(), query: newToken() };

let ca: PemPair;
let rogueCa: PemPair;
let web1: PemPair;
let rogueWeb1: PemPair;
let oncall: PemPair;
/** TLS, no client certificates. */
let tlsCollector: RunningCollector;
/** Mutual TLS: clients need a certificate from `ca`. */
let mtlsCollector: RunningCollector;
const closers: (() => void)[] = [];

before(async () => {
  ca = makeCa(dir, 'ca');
  rogueCa = makeCa(dir, 'rogue-ca');
  const server = loopbackServerCert(dir, ca);
  web1 = agentClientCert(dir, ca, 'web-1');
  rogueWeb1 = issueCert(dir, rogueCa, { name: 'rogue-web-1', commonName: 'web-1', altNames: ['DNS:web-1'], usage: 'clientAuth' });
  oncall = issueCert(dir, ca, { name: 'oncall', commonName: 'oncall', altNames: [], usage: 'clientAuth' });
  const common = { grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', log: silent };
  tlsCollector = await startCollector({ ...common, dataDir: path.join(dir, 'tls'), security: { tokens, tls: { certChain: server.cert, privateKey: server.key } } });
  mtlsCollector = await startCollector({
    ...common,
    dataDir: path.join(dir, 'mtls'),
    security: { tokens, tls: { certChain: server.cert, privateKey: server.key, clientCa: ca.cert } },
  });
});

after(async () => {
  for (const close of closers) close();
  await tlsCollector.close();
  await mtlsCollector.close();
  rmSync(dir, { recursive: true, force: true });
});

function queryClient(address: string, creds: grpc.ChannelCredentials) {
  const client = newQueryClient(address, creds);
  closers.push(() => client.close());
  return client;
}

function agentClient(address: string, creds: grpc.ChannelCredentials) {
  const client = newAgentGatewayClient(address, creds);
  closers.push(() => client.close());
  return client;
}

/** ListHosts with the query token; a short deadline, since a refused handshake is retried until then. */
function listHosts(address: string, creds: grpc.ChannelCredentials): Promise<string[]> {
  const client = queryClient(address, creds);
  return new Promise((resolve, reject) =>
    client.listHosts({}, bearer(tokens.query), { deadline: Date.now() + 5000 }, (err, res) => (err || !res ? reject(err ?? new Error('no response')) : resolve(res.hosts.map((h) => h.host)))),
  );
}

const trusting = (root: PemPair, client?: PemPair): grpc.ChannelCredentials => grpc.credentials.createSsl(root.cert, client?.key ?? null, client?.cert ?? null);

function unavailable(err: grpc.ServiceError): boolean {
  assert.ok(err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED, `${grpc.status[err.code]}: ${err.details}`);
  return true;
}

test("over TLS, a client trusting the collector's CA gets answers", async () => {
  assert.deepEqual(await listHosts(tlsCollector.grpcAddress, trusting(ca)), []);
});

test('a client refuses a collector whose certificate its CA did not sign, and plaintext gets nothing', async () => {
  await assert.rejects(listHosts(tlsCollector.grpcAddress, trusting(rogueCa)), unavailable);
  await assert.rejects(listHosts(tlsCollector.grpcAddress, grpc.credentials.createInsecure()), unavailable);
});

test('mutual TLS: an agent uploads for the host its certificate names, and only for it', { timeout: 30_000 }, async () => {
  const client = agentClient(mtlsCollector.grpcAddress, trusting(ca, web1));
  const own = new AgentStreamSession(client, bearer(tokens.agent));
  own.hello('web-1', 'agent-web-1');
  assert.equal((await own.upload(windowOf('web-1', 'agent-web-1', 1))).stored, true);
  assert.equal((await own.end()).code, grpc.status.OK);

  const other = new AgentStreamSession(client, bearer(tokens.agent));
  other.hello('web-2', 'agent-web-2');
  const ack = other.upload(windowOf('web-2', 'agent-web-2', 1));
  const status = await other.status;
  assert.equal(status.code, grpc.status.PERMISSION_DENIED);
  assert.equal(status.details, 'may not upload for host web-2: the client certificate names web-1, web-1, not web-2');
  await assert.rejects(ack, /before an ack/);

  assert.deepEqual(await listHosts(mtlsCollector.grpcAddress, trusting(ca, oncall)), ['web-1']);
});

test('mutual TLS: no client certificate, or one from another CA, gets no connection', { timeout: 30_000 }, async () => {
  await assert.rejects(listHosts(mtlsCollector.grpcAddress, trusting(ca)), unavailable);
  await assert.rejects(listHosts(mtlsCollector.grpcAddress, trusting(ca, rogueWeb1)), unavailable);

  const rogue = new AgentStreamSession(agentClient(mtlsCollector.grpcAddress, trusting(ca, rogueWeb1)), bearer(tokens.agent));
  rogue.hello('web-1', 'rogue-agent');
  rogue.call.write({ window: windowOf('web-1', 'rogue-agent', 1) });
  assert.equal((await rogue.status).code, grpc.status.UNAVAILABLE);
  assert.deepEqual(await listHosts(mtlsCollector.grpcAddress, trusting(ca, oncall)), ['web-1']);
});

test('mutual TLS still needs the right token: a valid certificate with the query token cannot upload', { timeout: 30_000 }, async () => {
  const s = new AgentStreamSession(agentClient(mtlsCollector.grpcAddress, trusting(ca, web1)), bearer(tokens.query));
  s.hello('web-1', 'agent-web-1b');
  const status = await s.status;
  assert.equal(status.code, grpc.status.PERMISSION_DENIED);
  assert.match(status.details, /the query token may not call \/hotloop\.v1\.AgentGateway\/Connect/);
});

test("the agent's uploader sends its token and client certificate from files", { timeout: 30_000 }, async () => {
  const tokenFile = writeTokenFile(dir, 'agent.token', tokens.agent);
  const warnings: string[] = [];
  const credentials = loadClientCredentials({ tokenFile, tlsCa: ca.certFile, tlsClientCert: web1.certFile, tlsClientKey: web1.keyFile }, (m) => warnings.push(m));
  const acked = new Promise<UploadAck>((resolve) => {
    const uploader = new Uploader({
      collectorAddress: mtlsCollector.grpcAddress,
      host: 'web-1',
      agentId: 'uploader-web-1',
      version: 'test',
      queue: new MemoryWindowQueue(10),
      log: silent,
      credentials,
      onAck: (ack) => {
        resolve(ack);
        void uploader.stop();
      },
    });
    uploader.start();
    uploader.enqueue(windowOf('web-1', 'uploader-web-1', 7));
  });
  assert.deepEqual(await acked, { agentId: 'uploader-web-1', seq: 7, stored: true, duplicate: false, error: '', retryAfterMs: 0 });
  assert.deepEqual(warnings, []);
});

test('CLI: collector with --tls-cert/--tls-client-ca/token files; hosts and agent with --tls-ca, a client certificate and a token', { timeout: 240_000 }, async () => {
  const server = loopbackServerCert(dir, ca, 'cli-server');
  const agentFile = writeTokenFile(dir, 'cli-agent.token', tokens.agent);
  const queryFile = writeTokenFile(dir, 'cli-query.token', tokens.query);
  const port = await freePort();
  // Clients dial a name: Node warns (DEP0123) when TLS is given an IP address to check.
  const address = `localhost:${port}`;
  const daemon = startHotloop([
    'collector', '--grpc', `127.0.0.1:${port}`, '--http', '127.0.0.1:0', '--data', path.join(dir, 'cli-data'),
    '--tls-cert', server.certFile, '--tls-key', server.keyFile, '--tls-client-ca', ca.certFile,
    '--agent-token-file', agentFile, '--query-token-file', queryFile,
  ]);
  try {
    await waitFor('the collector to start', () => (daemon.logs().includes('collector started') ? true : undefined), 30_000);
    assert.match(daemon.logs(), /"auth":true,"tls":true,"mutualTls":true/);
    const client = ['--collector', address, '--token-file', queryFile, '--tls-client-cert', oncall.certFile, '--tls-client-key', oncall.keyFile];

    const ok = await runHotloop(['hosts', ...client, '--tls-ca', ca.certFile, '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout), []);

    const untrusted = await runHotloop(['hosts', ...client, '--tls-ca', rogueCa.certFile]);
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.stderr, new RegExp(`^hotloop: cannot reach the collector at ${address}: .*self-signed certificate in certificate chain`));

    const notPem = await runHotloop(['hosts', ...client, '--tls-ca', agentFile]);
    assert.equal(notPem.code, 1);
    assert.match(notPem.stderr, /--tls-ca .*cli-agent\.token is not a PEM file/);

    const halfPair = await runHotloop(['hosts', '--collector', address, '--tls-ca', ca.certFile, '--tls-client-cert', oncall.certFile]);
    assert.equal(halfPair.code, 1);
    assert.match(halfPair.stderr, /--tls-client-cert and --tls-client-key go together/);

    // A real agent: its certificate names web-1, so it may upload as web-1 and not as web-2.
    const agentArgs = (host: string): string[] => [
      'agent', '--collector', address, '--host', host, '--window', '1', '--spool', path.join(dir, `spool-${host}`), '--http', '127.0.0.1:0',
      '--token-file', agentFile, '--tls-ca', ca.certFile, '--tls-client-cert', web1.certFile, '--tls-client-key', web1.keyFile,
    ];
    const honest = startHotloop(agentArgs('web-1'));
    const impostor = startHotloop(agentArgs('web-2'));
    try {
      await waitFor('a window from web-1', async () => {
        const r = await runHotloop(['hosts', ...client, '--tls-ca', ca.certFile, '--json']);
        return r.code === 0 && (JSON.parse(r.stdout) as { host: string }[]).some((h) => h.host === 'web-1') ? true : undefined;
      });
      await waitFor('the impostor to log its refusal', () =>
        impostor.logs().includes('may not upload for host web-2: the client certificate names web-1, web-1, not web-2') ? true : undefined,
      );
      const hosts = await runHotloop(['hosts', ...client, '--tls-ca', ca.certFile, '--json']);
      assert.deepEqual((JSON.parse(hosts.stdout) as { host: string }[]).map((h) => h.host), ['web-1']);
    } finally {
      await Promise.all([stopProcess(honest.child), stopProcess(impostor.child)]);
    }
  } finally {
    await stopProcess(daemon.child);
  }
});

test('CLI: a collector whose key does not match its certificate refuses to start, saying so', { timeout: 30_000 }, async () => {
  const server = loopbackServerCert(dir, ca, 'mismatch');
  const res = await runHotloop(['collector', '--grpc', '127.0.0.1:0', '--http', '127.0.0.1:0', '--data', path.join(dir, 'mismatch-data'), '--tls-cert', server.certFile, '--tls-key', web1.keyFile]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /TLS certificate, key or client CA is unusable: .*key values mismatch/);
});
