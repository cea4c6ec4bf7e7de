// Secure by default: a collector without authentication stays on loopback, and
// bearer tokens never cross a network in plaintext.
import { isLoopbackHost, parseListenAddress } from './listen-address.js';

export interface ExposureSettings {
  grpcAddress: string;
  httpAddress: string;
  /** Both role tokens are configured. */
  tokens: boolean;
  /** The gRPC port serves TLS. */
  tls: boolean;
}

/** Throws, saying why and what to change, when the addresses would expose the collector without protection. */
export function checkListenPolicy(s: ExposureSettings): void {
  const grpcHost = parseListenAddress(s.grpcAddress).host;
  const httpHost = parseListenAddress(s.httpAddress).host;
  if (!isLoopbackHost(grpcHost)) {
    if (!s.tokens) {
      throw new Error(
        `refusing to listen on ${s.grpcAddress} without authentication: anyone who can reach it could upload and read profiles. ` +
          'Give the agent and query token files (--agent-token-file, --query-token-file) and a TLS certificate (--tls-cert, --tls-key), or listen on loopback (127.0.0.1)',
      );
    }
    if (!s.tls) {
      throw new Error(`refusing to listen on ${s.grpcAddress} without TLS: the bearer tokens would cross the network in plaintext. Give --tls-cert and --tls-key, or listen on loopback`);
    }
  }
  if (!isLoopbackHost(httpHost) && !s.tokens) {
    throw new Error(`refusing to serve HTTP on ${s.httpAddress} without authentication configured for gRPC: a collector without tokens stays on loopback`);
  }
}
