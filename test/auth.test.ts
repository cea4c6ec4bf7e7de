// Roles and tokens over real gRPC on 127.0.0.1, the loopback-only default, and
// the CLI's token flags in real subprocesses.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { startCollector, type RunningCollector } from '../collector/collector.js';
import { checkListenPolicy } from '../collector/listen-policy.js';
import { newAgentGatewayClient, newQueryClient, type AgentGatewayClient, type QueryClient } from '../proto/wire.js';
import { AgentStreamSession, bearer, windowOf } from './helpers/agent-stream.js';
import { runHotloop, tempDir } from './helpers/processes.js';
import { newToken, writeTokenFile } from './helpers/tokens.js';

const silent = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const dir = tempDir('auth');
const tokens = { agent: newToken(), query: newToken() };
let collector: RunningCollector;
let agents: AgentGatewayClient;
let queries: QueryClient;

before(async () => {
  collector = await startCollector({ dataDir: dir, grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', log: silent, security: { tokens } });
  agents = newAgentGatewayClient(collector.grpcAddress);
  queries = newQueryClient(collector.grpcAddress);
});

after(async () => {
  agents.close();
  queries.close();
  await collector.close();
  rmSync(dir, { recursive: true, force: true });
});

function unaryResult<Res>(call: (cb: grpc.requestCallback<Res>) => void): Promise<Res> {
  return new Promise((resolve, reject) => call((err, res) => (err || !res ? reject(err ?? new Error('no response')) : resolve(res))));
}

const listHosts = (md: grpc.Metadata): Promise<string[]> =>
  unaryResult<{ hosts: { host: string }[] }>((cb) => queries.listHosts({}, md, {}, cb)).then((r) => r.hosts.map((h) => h.host));

/** Every Query method, called with `md`. */
const queryCalls = (md: () => grpc.Metadata): [string, () => Promise<unknown>][] => [
  ['ListHosts', () => listHosts(md())],
  ['QueryProfile', () => unaryResult((cb) => queries.queryProfile({ host: 'web-a', fromUnixNanos: 0n, toUnixNanos: 1n, pid: 0, comm: '' }, md(), {}, cb))],
  ['ListEpisodes', () => unaryResult((cb) => queries.listEpisodes({ host: '', fromUnixNanos: 0n, toUnixNanos: 1n }, md(), {}, cb))],
  ['Fleet', () => unaryResult((cb) => queries.fleet({ fromUnixNanos: 0n, toUnixNanos: 1n }, md(), {}, cb))],
  ['RequestCapture', () => unaryResult((cb) => queries.requestCapture({ host: 'web-a', durationSeconds: 1, frequencyHz: 99, pid: 0 }, md(), {}, cb))],
];

function refusedWith(code: grpc.status, details: RegExp) {
  return (err: grpc.ServiceError): boolean => {
    assert.equal(err.code, code, `${grpc.status[err.code]}: ${err.details}`);
    assert.match(err.details, details);
    return true;
  };
}

function withAuthorization(value: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', value);
  return md;
}

test('the query token may call every Query method; the agent token may call none', async () => {
  assert.ok(Array.isArray(await listHosts(bearer(tokens.query))));
  // Past the token check: the collector itself answers that no agent of the host is connected.
  const capture = queryCalls(() => bearer(tokens.query)).find(([name]) => name === 'RequestCapture')?.[1];
  await assert.rejects(capture?.() ?? Promise.resolve(), refusedWith(grpc.status.FAILED_PRECONDITION, /^no agent of host web-a is connected/));
  for (const [name, call] of queryCalls(() => bearer(tokens.agent))) {
    await assert.rejects(call(), refusedWith(grpc.status.PERMISSION_DENIED, new RegExp(`^the agent token may not call /hotloop\\.v1\\.Query/${name}; it needs the query token$`)));
  }
});

test('a missing, wrong, malformed or truncated token is refused on every Query method', async () => {
  const refusals: [string, () => grpc.Metadata, RegExp][] = [
    ['no token', () => new grpc.Metadata(), /^missing "authorization: Bearer <token>" metadata/],
    ['a wrong token', () => bearer(newToken()), /^the bearer token is not valid/],
    ['a truncated query token', () => bearer(tokens.query.slice(0, -1)), /^the bearer token is not valid/],
    ['the query token with a suffix', () => bearer(`${tokens.query}0`), /^the bearer token is not valid/],
    ['another scheme', () => withAuthorization(`Basic ${tokens.query}`), /^the bearer token is not valid/],
    ['a scheme without a token', () => withAuthorization('Bearer'), /^the bearer token is not valid/],
  ];
  for (const [what, md, details] of refusals) {
    for (const [name, call] of queryCalls(md)) {
      await assert.rejects(call(), refusedWith(grpc.status.UNAUTHENTICATED, details), `${what} on ${name}`);
    }
  }
});

test('the agent token may upload; the query token, a wrong token and no token may not, and store nothing', { timeout: 30_000 }, async () => {
  const agent = new AgentStreamSession(agents, bearer(tokens.agent));
  agent.hello('web-a', 'agent-a');
  assert.deepEqual(await agent.upload(windowOf('web-a', 'agent-a', 1)), { agentId: 'agent-a', seq: 1, stored: true, duplicate: false, error: '', retryAfterMs: 0 });
  assert.equal((await agent.end()).code, grpc.status.OK);

  const refused: [grpc.Metadata, grpc.status, RegExp][] = [
    [bearer(tokens.query), grpc.status.PERMISSION_DENIED, /^the query token may not call \/hotloop\.v1\.AgentGateway\/Connect; it needs the agent token$/],
    [bearer(newToken()), grpc.status.UNAUTHENTICATED, /^the bearer token is not valid; \/hotloop\.v1\.AgentGateway\/Connect needs the agent token$/],
    [new grpc.Metadata(), grpc.status.UNAUTHENTICATED, /^missing "authorization: Bearer <token>" metadata/],
  ];
  for (const [i, [md, code, details]] of refused.entries()) {
    const intruder = new AgentStreamSession(agents, md);
    intruder.hello(`intruder-${i}`, `intruder-${i}`);
    const ack = intruder.upload(windowOf(`intruder-${i}`, `intruder-${i}`, 1));
    const status = await intruder.status;
    assert.equal(status.code, code, status.details);
    assert.match(status.details, details);
    await assert.rejects(ack, /before an ack/);
  }
  assert.deepEqual(await listHosts(bearer(tokens.query)), ['web-a']);
});

test('without tokens and TLS the collector stays on loopback, and says why otherwise', async () => {
  const open = { grpcAddress: '0.0.0.0:0', httpAddress: '127.0.0.1:0', log: silent, dataDir: path.join(dir, 'never-created') };
  await assert.rejects(startCollector(open), /^Error: refusing to listen on 0\.0\.0\.0:0 without authentication: anyone who can reach it could upload and read profiles/);
  await assert.rejects(startCollector({ ...open, grpcAddress: '[::]:0' }), /refusing to listen on \[::\]:0 without authentication/);
  await assert.rejects(startCollector({ ...open, grpcAddress: '127.0.0.1:0', httpAddress: '0.0.0.0:0' }), /refusing to serve HTTP on 0\.0\.0\.0:0 without authentication/);
  await assert.rejects(startCollector({ ...open, security: { tokens } }), /refusing to listen on 0\.0\.0\.0:0 without TLS: the bearer tokens would cross the network in plaintext/);

  for (const grpcAddress of ['127.0.0.1:7717', '127.8.9.10:1', '[::1]:7717', 'localhost:7717', '[::ffff:127.0.0.1]:1']) {
    assert.doesNotThrow(() => checkListenPolicy({ grpcAddress, httpAddress: '127.0.0.1:0', tokens: false, tls: false }), grpcAddress);
  }
  assert.doesNotThrow(() => checkListenPolicy({ grpcAddress: '0.0.0.0:7717', httpAddress: '0.0.0.0:7718', tokens: true, tls: true }));
  assert.throws(() => checkListenPolicy({ grpcAddress: '10.1.2.3:7717', httpAddress: '127.0.0.1:0', tokens: false, tls: true }), /without authentication/);
});

test('one token for both roles is refused', async () => {
  const same = newToken();
  await assert.rejects(
    startCollector({ grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', log: silent, dataDir: path.join(dir, 'same'), security: { tokens: { agent: same, query: same } } }),
    /the agent and query tokens are the same; each role needs its own token/,
  );
});

test('CLI: collector and up refuse a non-loopback address without auth, naming what to give', { timeout: 60_000 }, async () => {
  const data = path.join(dir, 'cli-data');
  const collectorRun = await runHotloop(['collector', '--grpc', '0.0.0.0:0', '--http', '127.0.0.1:0', '--data', data]);
  assert.equal(collectorRun.code, 1);
  assert.match(collectorRun.stderr, /refusing to listen on 0\.0\.0\.0:0 without authentication.*--agent-token-file, --query-token-file.*--tls-cert, --tls-key/);

  const upRun = await runHotloop(['up', '--grpc', '0.0.0.0:0', '--http', '127.0.0.1:0', '--data', data]);
  assert.equal(upRun.code, 1);
  assert.match(upRun.stderr, /refusing to listen on 0\.0\.0\.0:0 without authentication/);

  const agentFile = writeTokenFile(dir, 'only-agent.token', newToken());
  const oneRole = await runHotloop(['collector', '--grpc', '127.0.0.1:0', '--http', '127.0.0.1:0', '--data', data, '--agent-token-file', agentFile]);
  assert.equal(oneRole.code, 1);
  assert.match(oneRole.stderr, /give both --agent-token-file and --query-token-file: with only one, the other role would be open to anyone/);
});

test('CLI: query commands send the --token-file token; the wrong role and a bad file are refused', { timeout: 60_000 }, async () => {
  const queryFile = writeTokenFile(dir, 'query.token', tokens.query);
  const agentFile = writeTokenFile(dir, 'agent.token', tokens.agent);
  const addr = ['--collector', collector.grpcAddress];

  const ok = await runHotloop(['hosts', ...addr, '--token-file', queryFile, '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(Array.isArray(JSON.parse(ok.stdout)));
  assert.equal(ok.stderr, '');

  const wrongRole = await runHotloop(['fleet', ...addr, '--token-file', agentFile]);
  assert.equal(wrongRole.code, 1);
  assert.match(wrongRole.stderr, /^hotloop: the collector at 127\.0\.0\.1:\d+ refused the call: the agent token may not call \/hotloop\.v1\.Query\/Fleet; it needs the query token\n$/);

  const none = await runHotloop(['verdicts', ...addr]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /refused the call: missing "authorization: Bearer <token>" metadata/);

  const shortFile = writeTokenFile(dir, 'short.token', 'hunter2');
  const short = await runHotloop(['hosts', ...addr, '--token-file', shortFile]);
  assert.equal(short.code, 1);
  assert.match(short.stderr, /--token-file .*short\.token must hold one token of at least 16 printable characters/);

  const missing = await runHotloop(['hosts', ...addr, '--token-file', path.join(dir, 'absent.token')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /cannot read --token-file .*absent\.token: ENOENT/);
});

test('CLI: a token file open to group or others is used, with a warning to chmod it', { timeout: 30_000 }, async () => {
  const openFile = writeTokenFile(dir, 'open.token', tokens.query, 0o644);
  const res = await runHotloop(['hosts', '--collector', collector.grpcAddress, '--token-file', openFile, '--json']);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stderr, /^hotloop: warning: --token-file .*open\.token is open to its group and other users \(mode 0644\); chmod 600 it\n$/);
  const groupFile = writeTokenFile(dir, 'group.token', tokens.query, 0o640);
  const group = await runHotloop(['hosts', '--collector', collector.grpcAddress, '--token-file', groupFile, '--json']);
  assert.match(group.stderr, /is open to its group \(mode 0640\)/);
});
