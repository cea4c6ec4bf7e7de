#!/usr/bin/env node
// The one `hotloop` command: daemons (collector, agent, up) and clients (hosts, query, capture, verdicts, fleet).
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { startAgent, type RunningAgent } from '../agent/agent.js';
import { DEFAULT_SPOOL_MAX_BYTES } from '../agent/window-spool.js';
import { startCollector } from '../collector/collector.js';
import { DEFAULT_RETENTION_NS } from '../collector/retention.js';
import { CAPTURE_LIMITS } from '../proto/capture-limits.js';
import { decodeProfile } from '../proto/pprof.js';
import { addClientSecurityOptions, loadClientCredentials, type ClientSecurityFlags } from './client-credentials.js';
import { CollectorClient, CollectorRequestError } from './collector-client.js';
import { addConfigOption } from './config-file.js';
import { addCollectorSecurityOptions, loadCollectorSecurity, uploadLimitsFrom, type CollectorSecurityFlags, type UploadLimitFlags } from './collector-security-flags.js';
import { formatFleetTable, serviceFleetJson } from './format-fleet.js';
import { formatFolded } from './format-folded.js';
import { formatTop } from './format-top.js';
import { episodeJson, formatEpisodesTable, orderForOnCall } from './format-verdicts.js';
import { createLogger } from './logger.js';
import { parseByteSize, parseDuration } from './quantity.js';
import { formatUnixNanos, parseTimeSpec } from './time-spec.js';

const DEFAULT_GRPC = '127.0.0.1:7717';
const DEFAULT_HTTP = '127.0.0.1:7718';
const DEFAULT_AGENT_HTTP = '127.0.0.1:7719';
const DEFAULT_SPOOL = '/var/lib/hotloop/spool';

/** A capture's result may take this long beyond its duration: the agent's start-up, the upload, the collector's own wait. */
const CAPTURE_WAIT_MS = 90_000;

interface ProfileOutputFlags {
  format: 'pprof' | 'folded' | 'top';
  output?: string;
  nodes: number;
}

/** --format, -o and --nodes: how a command that returns a profile writes it. */
function addProfileOutputOptions(command: Command): Command {
  return command
    .addOption(new Option('--format <format>', 'output format').choices(['pprof', 'folded', 'top']).default('top'))
    .option('-o, --output <file>', 'write to a file instead of stdout')
    .option('--nodes <n>', 'rows shown by --format top', integer(1, 100_000), 25);
}

function checkProfileOutput(flags: ProfileOutputFlags): void {
  if (flags.format === 'pprof' && !flags.output) throw new CollectorRequestError('--format pprof writes binary data: give -o FILE', 3);
}

/** The profile in the chosen format, to the file (saying what it holds on stderr) or to stdout. */
function writeProfile(pprofGz: Buffer, flags: ProfileOutputFlags, holds: string): void {
  const out: Buffer | string = flags.format === 'pprof' ? pprofGz : flags.format === 'folded' ? formatFolded(decodeProfile(pprofGz)) : formatTop(decodeProfile(pprofGz), flags.nodes);
  if (flags.output) {
    writeFileSync(flags.output, out);
    process.stderr.write(`wrote ${flags.output}: ${holds}\n`);
  } else {
    process.stdout.write(out);
  }
}

function integer(min: number, max: number) {
  return (text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return n;
  };
}

function fraction(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || n > 1024) throw new InvalidArgumentError('expected a positive number of cores, e.g. 0.5');
  return n;
}

function timeSpec(text: string): bigint {
  try {
    return parseTimeSpec(text);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** Wraps a quantity parser so commander reports its message as a bad argument. */
function quantity<T>(parse: (text: string) => T) {
  return (text: string): T => {
    try {
      return parse(text);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  };
}

const retentionOption = (): Option =>
  new Option('--retention <duration>', 'delete windows and closed episodes older than this (30m, 12h, 7d, 2w)').argParser(quantity(parseDuration)).default(DEFAULT_RETENTION_NS, '7d');

/** --from/--to: parsed to unix nanoseconds, the default shown in help as typed (help cannot print a bigint). */
function timeOption(flags: string, description: string, fallback: string): Option {
  return new Option(flags, description).argParser(timeSpec).default(timeSpec(fallback), fallback);
}

/** Stops the given services on SIGINT/SIGTERM, then exits 0. */
function stopOnSignals(stoppers: (() => Promise<void>)[]): void {
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void Promise.allSettled(stoppers.map((s) => s())).then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

interface AgentFlags {
  collector: string;
  host: string;
  frequency: number;
  window: number;
  hotThreshold: number;
  backend?: 'bpftrace' | 'perf';
  spoolMaxBytes: number;
}

/** Where the agent keeps its spool and serves /metrics. */
interface AgentDaemonFlags {
  spool: string;
  http: string;
}

const agentOptions = (cmd: Command): Command =>
  cmd
    .option('--host <name>', 'host name reported to the collector', hostname())
    .option('--frequency <hz>', 'sampling frequency per CPU', integer(1, 1000), 19)
    .option('--window <seconds>', 'seconds per capture window', integer(1, 3600), 10)
    .option('--hot-threshold <cores>', 'CPU share of one core over a window that makes a process hot', fraction, 0.5)
    .addOption(new Option('--backend <name>', 'capture backend (default: bpftrace, perf if bpftrace is missing)').choices(['bpftrace', 'perf']))
    .addOption(
      new Option('--spool-max-bytes <size>', 'bound on the spool; beyond it the oldest windows are dropped').argParser(quantity(parseByteSize)).default(DEFAULT_SPOOL_MAX_BYTES, '256MiB'),
    );

/** `up` passes no security flags: its agent talks plaintext to its own loopback collector. */
async function runAgent(flags: AgentFlags & ClientSecurityFlags, daemon: AgentDaemonFlags): Promise<RunningAgent> {
  const log = createLogger('hotloop-agent');
  return startAgent({
    collectorAddress: flags.collector,
    host: flags.host,
    frequencyHz: flags.frequency,
    windowSeconds: flags.window,
    hotThreshold: flags.hotThreshold,
    log,
    spoolDir: daemon.spool,
    spoolMaxBytes: flags.spoolMaxBytes,
    httpAddress: daemon.http,
    credentials: loadClientCredentials(flags, (message) => log.warn(message)),
    ...(flags.backend ? { backend: flags.backend } : {}),
  });
}

/** A query client for the collector, with the token and TLS its flags name. */
/** Runs `use` with a client of the collector the flags name, closing it after. */
async function withCollector(flags: { collector: string } & ClientSecurityFlags, use: (client: CollectorClient) => Promise<void>): Promise<void> {
  const client = new CollectorClient(flags.collector, loadClientCredentials(flags, (message) => process.stderr.write(`hotloop: warning: ${message}\n`)));
  try {
    await use(client);
  } finally {
    client.close();
  }
}

export function buildProgram(): Command {
  const program = new Command('hotloop')
    .description('fleet-wide CPU profiler that finds busy loops')
    .showHelpAfterError()
    .configureOutput({ outputError: (str, write) => write(str) });

  addCollectorSecurityOptions(
    addConfigOption(program.command('collector'))
      .description('store profiles from agents and answer queries (without token files: loopback only)')
      .option('--grpc <addr>', 'gRPC listen address', DEFAULT_GRPC)
      .option('--http <addr>', 'HTTP listen address (health, metrics)', DEFAULT_HTTP)
      .option('--data <dir>', 'data directory of the embedded store', './hotloop-data')
      .addOption(retentionOption()),
  ).action(async (flags: { grpc: string; http: string; data: string; retention: bigint } & CollectorSecurityFlags & UploadLimitFlags) => {
    const log = createLogger('hotloop-collector');
    const security = loadCollectorSecurity(flags, (message) => log.warn(message));
    const collector = await startCollector({ grpcAddress: flags.grpc, httpAddress: flags.http, dataDir: flags.data, log, security, limits: uploadLimitsFrom(flags), retentionNs: flags.retention });
    stopOnSignals([() => collector.close()]);
  });

  addClientSecurityOptions(
    agentOptions(
      addConfigOption(program.command('agent'))
        .description('profile this host and send windows to the collector')
        .option('--collector <addr>', 'collector gRPC address', DEFAULT_GRPC)
        .option('--spool <dir>', 'on-disk spool: windows not yet acked, the agent id and sequence number', DEFAULT_SPOOL)
        .option('--http <addr>', 'HTTP listen address (health, metrics)', DEFAULT_AGENT_HTTP),
    ),
  ).action(async (flags: AgentFlags & ClientSecurityFlags & AgentDaemonFlags) => {
    const agent = await runAgent(flags, flags);
    stopOnSignals([() => agent.stop()]);
  });

  agentOptions(
    addConfigOption(program.command('up'))
      .description('collector on the embedded store plus an agent for this host, on loopback')
      .option('--grpc <addr>', 'gRPC listen address', DEFAULT_GRPC)
      .option('--http <addr>', 'HTTP listen address', DEFAULT_HTTP)
      .option('--data <dir>', 'data directory', './hotloop-data')
      .addOption(retentionOption())
      .option('--spool <dir>', "the agent's spool directory (default: DIR/spool of --data)")
      .option('--agent-http <addr>', "the agent's HTTP listen address (health, metrics)", DEFAULT_AGENT_HTTP),
  ).action(async (flags: Omit<AgentFlags, 'collector'> & { grpc: string; http: string; data: string; retention: bigint; spool?: string; agentHttp: string }) => {
    const collector = await startCollector({
      grpcAddress: flags.grpc,
      httpAddress: flags.http,
      dataDir: flags.data,
      log: createLogger('hotloop-collector'),
      retentionNs: flags.retention,
    });
    const agent = await runAgent({ ...flags, collector: collector.grpcAddress }, { spool: flags.spool ?? path.join(flags.data, 'spool'), http: flags.agentHttp });
    stopOnSignals([() => agent.stop().then(() => collector.close())]);
  });

  addClientSecurityOptions(program.command('hosts'))
    .description('hosts the collector has windows for')
    .option('--collector <addr>', 'collector gRPC address', DEFAULT_GRPC)
    .option('--json', 'print JSON')
    .action(async (flags: { collector: string; json?: boolean } & ClientSecurityFlags) => {
      await withCollector(flags, async (client) => {
        const { hosts } = await client.listHosts();
        const rows = hosts.map((h) => ({ host: h.host, first: formatUnixNanos(h.firstUnixNanos), last: formatUnixNanos(h.lastUnixNanos), windows: h.windows }));
        if (flags.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
        else if (rows.length === 0) process.stdout.write('no hosts yet\n');
        else for (const r of rows) process.stdout.write(`${r.host}\t${r.first}\t${r.last}\t${r.windows} windows\n`);
      });
    });

  addProfileOutputOptions(addClientSecurityOptions(program.command('query')))
    .description('merged CPU profile of one host over a time range, or one on-demand capture')
    .option('--collector <addr>', 'collector gRPC address', DEFAULT_GRPC)
    .requiredOption('--host <name>', 'host to query')
    .addOption(timeOption('--from <time>', 'start: RFC 3339, unix seconds, now, or relative (-5m)', '-15m'))
    .addOption(timeOption('--to <time>', 'end, same forms as --from', 'now'))
    .option('--pid <pid>', 'only this process', integer(1, 2 ** 32 - 1))
    .option('--comm <name>', 'only processes with this name')
    .option('--capture <id>', 'the on-demand capture with this request id (as `hotloop capture` prints it) instead of a time range')
    .action(async (flags: { collector: string; host: string; from: bigint; to: bigint; pid?: number; comm?: string; capture?: string } & ProfileOutputFlags & ClientSecurityFlags) => {
      if (flags.capture === undefined) checkRange(flags);
      checkProfileOutput(flags);
      await withCollector(flags, async (client) => {
        const res = await client.queryProfile({
          host: flags.host,
          fromUnixNanos: flags.from,
          toUnixNanos: flags.to,
          pid: flags.pid ?? 0,
          comm: flags.comm ?? '',
          captureRequestId: flags.capture ?? '',
        });
        writeProfile(res.pprofGz, flags, `${res.samples} samples from ${flags.capture === undefined ? `${res.windows} windows` : `capture ${flags.capture}`}`);
      });
    });

  addProfileOutputOptions(addClientSecurityOptions(program.command('capture')))
    .description("on-demand capture: the host's agent samples on-CPU stacks now, at the given frequency, and the profile comes back when it is done")
    .option('--collector <addr>', 'collector gRPC address', DEFAULT_GRPC)
    .requiredOption('--host <name>', 'host whose agent runs the capture')
    .option('--pid <pid>', 'only this process (default: every process on the host)', integer(CAPTURE_LIMITS.pid.min + 1, CAPTURE_LIMITS.pid.max))
    .option('--duration <seconds>', 'how long to sample', integer(CAPTURE_LIMITS.durationSeconds.min, CAPTURE_LIMITS.durationSeconds.max), 10)
    .option('--frequency <hz>', 'samples per second per CPU', integer(CAPTURE_LIMITS.frequencyHz.min, CAPTURE_LIMITS.frequencyHz.max), 99)
    .action(async (flags: { collector: string; host: string; pid?: number; duration: number; frequency: number } & ProfileOutputFlags & ClientSecurityFlags) => {
      checkProfileOutput(flags);
      await withCollector(flags, async (client) => {
        process.stderr.write(`capturing ${flags.pid ? `pid ${flags.pid}` : 'every process'} on ${flags.host} for ${flags.duration} s at ${flags.frequency} Hz\n`);
        const res = await client.requestCapture({ host: flags.host, durationSeconds: flags.duration, frequencyHz: flags.frequency, pid: flags.pid ?? 0 }, CAPTURE_WAIT_MS);
        writeProfile(res.pprofGz, flags, `${res.samples} samples; capture ${res.requestId} (\`hotloop query --host ${flags.host} --capture ${res.requestId}\` fetches it again)`);
      });
    });

  addClientSecurityOptions(program.command('verdicts'))
    .description('busy-loop and working episodes of hot processes, busy loops first')
    .option('--collector <addr>', 'collector gRPC address', DEFAULT_GRPC)
    .option('--host <name>', 'only this host (default: every host)')
    .addOption(timeOption('--from <time>', 'start: RFC 3339, unix seconds, now, or relative (-5m)', '-1h'))
    .addOption(timeOption('--to <time>', 'end, same forms as --from', 'now'))
    .option('--json', 'print one JSON array')
    .action(async (flags: { collector: string; host?: string; from: bigint; to: bigint; json?: boolean } & ClientSecurityFlags) => {
      checkRange(flags);
      await withCollector(flags, async (client) => {
        const { episodes } = await client.listEpisodes({ host: flags.host ?? '', fromUnixNanos: flags.from, toUnixNanos: flags.to });
        const range = `${flags.host ? `on ${flags.host}` : 'on any host'} between ${formatUnixNanos(flags.from)} and ${formatUnixNanos(flags.to)}`;
        process.stdout.write(flags.json ? JSON.stringify(orderForOnCall(episodes).map(episodeJson), null, 2) + '\n' : formatEpisodesTable(episodes, range, flags.collector === DEFAULT_GRPC ? '' : ` --collector ${flags.collector}`));
      });
    });

  addClientSecurityOptions(program.command('fleet'))
    .description('per service: how many of the hosts running it busy-looped')
    .option('--collector <addr>', 'collector gRPC address', DEFAULT_GRPC)
    .addOption(timeOption('--from <time>', 'start: RFC 3339, unix seconds, now, or relative (-5m)', '-1h'))
    .addOption(timeOption('--to <time>', 'end, same forms as --from', 'now'))
    .option('--json', 'print one JSON array')
    .action(async (flags: { collector: string; from: bigint; to: bigint; json?: boolean } & ClientSecurityFlags) => {
      checkRange(flags);
      await withCollector(flags, async (client) => {
        const { services } = await client.fleet({ fromUnixNanos: flags.from, toUnixNanos: flags.to });
        const range = `between ${formatUnixNanos(flags.from)} and ${formatUnixNanos(flags.to)}`;
        process.stdout.write(flags.json ? JSON.stringify(services.map(serviceFleetJson), null, 2) + '\n' : formatFleetTable(services, range));
      });
    });
  return program;
}

function checkRange(flags: { from: bigint; to: bigint }): void {
  if (flags.from >= flags.to) throw new CollectorRequestError(`--from (${formatUnixNanos(flags.from)}) must be before --to (${formatUnixNanos(flags.to)})`, 3);
}

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.stderr.write(`hotloop: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
