// Who may call what. Two roles with one bearer token each: `agent` uploads
// windows and receives capture requests; `query` reads. The token is checked
// before any handler runs; with mutual TLS, an agent's certificate must also
// name the host it says hello as.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { agentGatewayService, queryService } from '../proto/wire.js';

export type Role = 'agent' | 'query';

export type RoleTokens = Readonly<Record<Role, string>>;

/** The role each method needs; a method missing here is refused to everyone. */
const METHOD_ROLES: ReadonlyMap<string, Role> = new Map<string, Role>([
  [agentGatewayService.connect.path, 'agent'],
  ...Object.values(queryService).map((m): [string, Role] => [m.path, 'query']),
]);

const BEARER = /^Bearer[ ]+(\S+)$/i;

const digest = (token: string): Buffer => createHash('sha256').update(token).digest();

/** Tokens are compared as SHA-256 digests in constant time, so timing says nothing about how much of a guess was right. */
export class BearerTokens {
  private readonly digests: readonly (readonly [Role, Buffer])[];

  constructor(tokens: RoleTokens) {
    if (tokens.agent === tokens.query) throw new Error('the agent and query tokens are the same; each role needs its own token');
    this.digests = [
      ['agent', digest(tokens.agent)],
      ['query', digest(tokens.query)],
    ];
  }

  /** The role whose token the `authorization` value carries, or null. */
  roleOf(authorization: string): Role | null {
    const token = BEARER.exec(authorization)?.[1];
    if (!token) return null;
    const presented = digest(token);
    let role: Role | null = null;
    // Compare against every role, so the time taken does not depend on which one matched.
    for (const [name, expected] of this.digests) if (timingSafeEqual(presented, expected)) role = name;
    return role;
  }
}

/** The status a refused call ends with. */
interface CallRefusal {
  code: grpc.status;
  details: string;
}

/** Why a call with this metadata may not call `method`; null if it may. */
function authorizeCall(tokens: BearerTokens, method: string, metadata: grpc.Metadata): CallRefusal | null {
  const needed = METHOD_ROLES.get(method);
  if (!needed) return { code: grpc.status.PERMISSION_DENIED, details: `${method} is not open to any role` };
  const values = metadata.get('authorization');
  if (values.length === 0) return { code: grpc.status.UNAUTHENTICATED, details: `missing "authorization: Bearer <token>" metadata; ${method} needs the ${needed} token` };
  const role = values.length === 1 && typeof values[0] === 'string' ? tokens.roleOf(values[0]) : null;
  if (!role) return { code: grpc.status.UNAUTHENTICATED, details: `the bearer token is not valid; ${method} needs the ${needed} token` };
  if (role !== needed) return { code: grpc.status.PERMISSION_DENIED, details: `the ${role} token may not call ${method}; it needs the ${needed} token` };
  return null;
}

/** A server interceptor that ends every call failing `authorizeCall` before its handler sees it. */
export function authInterceptor(tokens: BearerTokens, log: Logger): grpc.ServerInterceptor {
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, proceed) => {
            const refusal = authorizeCall(tokens, method.path, metadata);
            if (!refusal) {
              proceed(metadata);
              return;
            }
            log.warn({ peer: call.getPeer(), method: method.path, reason: refusal.details }, 'call refused');
            call.sendStatus(refusal);
          },
        }),
    });
}

/**
 * Names a client certificate is issued to: its subject CNs and DNS
 * subjectAltNames. Matched exactly: a wildcard would let one agent speak for
 * many hosts.
 */
function certificateNames(cert: PeerCertificate): string[] {
  const cn = cert.subject?.CN;
  const names = Array.isArray(cn) ? [...cn] : cn ? [cn] : [];
  for (const entry of (cert.subjectaltname ?? '').split(', ')) {
    if (!entry.startsWith('DNS:')) continue;
    const value = entry.slice(4);
    // Node quotes a name holding separators as a JSON string.
    names.push(value.startsWith('"') ? (JSON.parse(value) as string) : value);
  }
  return names;
}

/** Why an agent with this client certificate may not upload for `host`; null if it may. */
export function certificateHostProblem(cert: PeerCertificate | undefined, host: string): string | null {
  if (!cert || Object.keys(cert).length === 0) return 'the collector requires a client certificate naming the host, and the connection has none';
  const names = certificateNames(cert);
  // Exact, as hosts are stored: "WEB-1" would otherwise be a second host record for the web-1 certificate.
  if (names.includes(host)) return null;
  return `the client certificate names ${names.length > 0 ? names.join(', ') : 'no host'}, not ${host}`;
}
