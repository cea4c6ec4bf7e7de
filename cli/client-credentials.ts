// What the agent and the query commands present to the collector: TLS channel
// credentials (trusting --tls-ca, with an optional client certificate) and the
// bearer token, sent as "authorization: Bearer <token>" with every call.
import * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import type { CollectorCredentials } from '../proto/wire.js';
import { readPemFile, readTokenFile } from './secret-files.js';

export interface ClientSecurityFlags {
  tokenFile?: string;
  tlsCa?: string;
  tlsClientCert?: string;
  tlsClientKey?: string;
}

export function addClientSecurityOptions(cmd: Command): Command {
  return cmd
    .option('--token-file <file>', 'file holding the bearer token for the collector (agent token for agents, query token for queries)')
    .option('--tls-ca <file>', "connect with TLS, trusting the collector's certificate if this PEM CA signed it")
    .option('--tls-client-cert <file>', 'PEM client certificate for mutual TLS (an agent\'s must name its host)')
    .option('--tls-client-key <file>', 'PEM private key of --tls-client-cert');
}

export function loadClientCredentials(flags: ClientSecurityFlags, warn: (message: string) => void): CollectorCredentials {
  if ((flags.tlsClientCert === undefined) !== (flags.tlsClientKey === undefined)) throw new Error('--tls-client-cert and --tls-client-key go together');
  if (flags.tlsClientCert !== undefined && flags.tlsCa === undefined) throw new Error('--tls-client-cert needs --tls-ca: client certificates are only sent over TLS');
  const callMetadata = new grpc.Metadata();
  if (flags.tokenFile !== undefined) callMetadata.set('authorization', `Bearer ${readTokenFile(flags.tokenFile, '--token-file', warn)}`);
  const channel =
    flags.tlsCa === undefined
      ? grpc.credentials.createInsecure()
      : grpc.credentials.createSsl(
          readPemFile(flags.tlsCa, '--tls-ca'),
          flags.tlsClientKey !== undefined ? readPemFile(flags.tlsClientKey, '--tls-client-key') : null,
          flags.tlsClientCert !== undefined ? readPemFile(flags.tlsClientCert, '--tls-client-cert') : null,
        );
  return { channel, callMetadata };
}
