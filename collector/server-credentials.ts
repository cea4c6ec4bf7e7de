// The gRPC port's transport: TLS with the collector's certificate, optionally
// requiring client certificates signed by a given CA (mutual TLS).
import { createSecureContext } from 'node:tls';
import * as grpc from '@grpc/grpc-js';

export interface ServerTls {
  /** PEM certificate chain, leaf first. */
  certChain: Buffer;
  /** PEM private key of the leaf certificate. */
  privateKey: Buffer;
  /** PEM CA certificates; when set, every client must present a certificate they signed. */
  clientCa?: Buffer;
}

export function serverCredentials(tls: ServerTls | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  // grpc-js reports a bad key or certificate only once a client connects; check them now, naming what is wrong.
  try {
    createSecureContext({ cert: tls.certChain, key: tls.privateKey, ...(tls.clientCa ? { ca: tls.clientCa } : {}) });
  } catch (err) {
    throw new Error(`TLS certificate, key or client CA is unusable: ${err instanceof Error ? err.message : String(err)}`);
  }
  return grpc.ServerCredentials.createSsl(tls.clientCa ?? null, [{ cert_chain: tls.certChain, private_key: tls.privateKey }], tls.clientCa !== undefined);
}
