// The collector's --tls-*, --*-token-file and upload limit flags, turned into
// the options startCollector takes.
import { InvalidArgumentError, type Command } from 'commander';
import type { CollectorSecurity } from '../collector/collector.js';
import { DEFAULT_UPLOAD_LIMITS, type UploadLimits } from '../collector/upload-limits.js';
import { readPemFile, readTokenFile } from './secret-files.js';

export interface CollectorSecurityFlags {
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  agentTokenFile?: string;
  queryTokenFile?: string;
}

export interface UploadLimitFlags {
  maxWindowBytes: number;
  maxWindowSamples: number;
  maxUploadsPerMinute: number;
  uploadBurst: number;
}

function positiveInteger(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return n;
}

export function addCollectorSecurityOptions(cmd: Command): Command {
  return cmd
    .option('--tls-cert <file>', 'serve gRPC over TLS with this PEM certificate chain')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-client-ca <file>', "require client certificates signed by this PEM CA; an agent's must name the host it uploads for")
    .option('--agent-token-file <file>', 'file holding the token agents must present (may upload, gets capture requests)')
    .option('--query-token-file <file>', 'file holding the token query clients must present (may list and query)')
    .option('--max-window-bytes <n>', "largest window pprof accepted, gzipped or not", positiveInteger, DEFAULT_UPLOAD_LIMITS.maxWindowBytes)
    .option('--max-window-samples <n>', 'most samples in one window pprof', positiveInteger, DEFAULT_UPLOAD_LIMITS.maxSamplesPerWindow)
    .option('--max-uploads-per-minute <n>', 'sustained windows per agent per minute', positiveInteger, DEFAULT_UPLOAD_LIMITS.uploadsPerMinute)
    .option('--upload-burst <n>', 'windows an agent may send at once, e.g. its backlog after an outage', positiveInteger, DEFAULT_UPLOAD_LIMITS.uploadBurst);
}

export function loadCollectorSecurity(flags: CollectorSecurityFlags, warn: (message: string) => void): CollectorSecurity {
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) throw new Error('--tls-cert and --tls-key go together');
  if (flags.tlsClientCa !== undefined && flags.tlsCert === undefined) throw new Error('--tls-client-ca needs --tls-cert and --tls-key: client certificates are only checked over TLS');
  if ((flags.agentTokenFile === undefined) !== (flags.queryTokenFile === undefined)) {
    throw new Error('give both --agent-token-file and --query-token-file: with only one, the other role would be open to anyone');
  }
  const security: CollectorSecurity = {};
  if (flags.agentTokenFile !== undefined && flags.queryTokenFile !== undefined) {
    security.tokens = {
      agent: readTokenFile(flags.agentTokenFile, '--agent-token-file', warn),
      query: readTokenFile(flags.queryTokenFile, '--query-token-file', warn),
    };
  }
  if (flags.tlsCert !== undefined && flags.tlsKey !== undefined) {
    security.tls = {
      certChain: readPemFile(flags.tlsCert, '--tls-cert'),
      privateKey: readPemFile(flags.tlsKey, '--tls-key'),
      ...(flags.tlsClientCa !== undefined ? { clientCa: readPemFile(flags.tlsClientCa, '--tls-client-ca') } : {}),
    };
  }
  return security;
}

export function uploadLimitsFrom(flags: UploadLimitFlags): UploadLimits {
  return { maxWindowBytes: flags.maxWindowBytes, maxSamplesPerWindow: flags.maxWindowSamples, uploadsPerMinute: flags.maxUploadsPerMinute, uploadBurst: flags.uploadBurst };
}
