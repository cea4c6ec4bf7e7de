// Picks the capture backend this host can run: bpftrace when it is installed
// and can load a program, perf otherwise.
import { execFileSync } from 'node:child_process';
import type { Logger } from 'pino';
import { BpftraceCapture } from './bpftrace-capture.js';
import type { CaptureBackend } from './capture-types.js';
import { validateCaptureSettings, type CaptureSettings } from './capture-settings.js';
import { PerfCapture } from './perf-capture.js';

export type CaptureBackendName = CaptureBackend['name'];

/** A backend whose child process is restarted when it fails. */
export interface SupervisedCaptureBackend extends CaptureBackend {
  /** Unplanned restarts of the capture child so far. */
  readonly restarts: number;
}

export interface CaptureSelectOptions extends CaptureSettings {
  log: Logger;
  /** Tried first; the other backend is still used if this one does not work here. */
  prefer?: CaptureBackendName;
}

const PROBE_TIMEOUT_MS = 30_000;

interface BackendCandidate {
  name: CaptureBackendName;
  install: string;
  /** A short real run: proves the tool is installed and allowed to trace on this kernel. */
  probe: { command: string; args: string[] };
  create(settings: CaptureSettings, log: Logger): SupervisedCaptureBackend;
}

const CANDIDATES: Record<CaptureBackendName, BackendCandidate> = {
  bpftrace: {
    name: 'bpftrace',
    install: 'apt-get install bpftrace',
    probe: { command: 'bpftrace', args: ['-e', 'BEGIN { exit(); }'] },
    create: (settings, log) => new BpftraceCapture({ ...settings, log }),
  },
  perf: {
    name: 'perf',
    install: 'apt-get install linux-perf',
    probe: { command: 'perf', args: ['record', '-q', '-e', 'cpu-clock', '-F', '19', '-a', '-k', 'mono', '-o', '-', '--', 'true'] },
    create: (settings, log) => new PerfCapture({ ...settings, log }),
  },
};

export function selectCaptureBackend(opts: CaptureSelectOptions): SupervisedCaptureBackend {
  const settings = validateCaptureSettings(opts);
  const order: CaptureBackendName[] = opts.prefer === 'perf' ? ['perf', 'bpftrace'] : ['bpftrace', 'perf'];
  const failures: string[] = [];
  for (const name of order) {
    const candidate = CANDIDATES[name];
    const failure = probeFailure(candidate);
    if (failure === undefined) {
      if (failures.length > 0) opts.log.warn({ backend: name, unavailable: failures }, 'using fallback capture backend');
      return candidate.create(settings, opts.log);
    }
    failures.push(`${name}: ${failure}`);
  }
  throw new Error(
    `no capture backend works on this host (${failures.join('; ')}). ` +
      `Install bpftrace (${CANDIDATES.bpftrace.install}) or, as a fallback, perf (${CANDIDATES.perf.install}), and run the agent as root.`,
  );
}

/** A backend of a kind already selected on this host, for another capture (an on-demand one) with its own settings. */
export function createCaptureBackend(name: CaptureBackendName, settings: CaptureSettings, log: Logger): SupervisedCaptureBackend {
  // The backend's constructor checks the settings.
  return CANDIDATES[name].create(settings, log);
}

/** Why the backend cannot run here, or undefined when its probe succeeded. */
function probeFailure(candidate: BackendCandidate): string | undefined {
  try {
    execFileSync(candidate.probe.command, candidate.probe.args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: PROBE_TIMEOUT_MS });
    return undefined;
  } catch (err) {
    if (isErrnoException(err) && err.code === 'ENOENT') return `\`${candidate.probe.command}\` is not on PATH`;
    const stderr = stderrOf(err);
    return `\`${candidate.probe.command} ${candidate.probe.args.join(' ')}\` failed${stderr ? `: ${stderr}` : ''}`;
  }
}

function isErrnoException(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && 'code' in err;
}

function stderrOf(err: unknown): string {
  if (typeof err !== 'object' || err === null || !('stderr' in err)) return '';
  const { stderr } = err;
  const text = Buffer.isBuffer(stderr) ? stderr.toString('utf8') : typeof stderr === 'string' ? stderr : '';
  return text.trim().split('\n').slice(-3).join(' | ').slice(0, 500);
}
