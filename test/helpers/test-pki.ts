// Certificates for TLS tests, made by the openssl CLI: a CA per test, server
// certificates for 127.0.0.1 and client certificates naming a host.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface PemPair {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function newKeyArgs(keyFile: string): string[] {
  return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile];
}

function pair(certFile: string, keyFile: string): PemPair {
  return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
}

/** A self-signed CA named `name`, its files in `dir`. */
export function makeCa(dir: string, name: string): PemPair {
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  openssl([
    'req', '-x509', ...newKeyArgs(keyFile), '-out', certFile, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return pair(certFile, keyFile);
}

export interface LeafSpec {
  /** File name stem. */
  name: string;
  commonName: string;
  /** e.g. ['IP:127.0.0.1'] or ['DNS:web-1']. */
  altNames: string[];
  usage: 'serverAuth' | 'clientAuth';
}

/** A certificate for `spec`, signed by `ca`. */
export function issueCert(dir: string, ca: PemPair, spec: LeafSpec): PemPair {
  const certFile = path.join(dir, `${spec.name}.crt`);
  const keyFile = path.join(dir, `${spec.name}.key`);
  const csrFile = path.join(dir, `${spec.name}.csr`);
  const extFile = path.join(dir, `${spec.name}.ext`);
  openssl(['req', '-new', ...newKeyArgs(keyFile), '-out', csrFile, '-subj', `/CN=${spec.commonName}`]);
  const ext = [`extendedKeyUsage=${spec.usage}`, 'basicConstraints=CA:FALSE'];
  if (spec.altNames.length > 0) ext.push(`subjectAltName=${spec.altNames.join(',')}`);
  writeFileSync(extFile, ext.join('\n') + '\n');
  openssl(['x509', '-req', '-in', csrFile, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '2', '-out', certFile, '-extfile', extFile]);
  return pair(certFile, keyFile);
}

/** A server certificate for loopback, by address or by name. */
export function loopbackServerCert(dir: string, ca: PemPair, name = 'server'): PemPair {
  return issueCert(dir, ca, { name, commonName: 'hotloop-collector', altNames: ['IP:127.0.0.1', 'DNS:localhost'], usage: 'serverAuth' });
}

/** A client certificate naming `host` in its CN and a DNS subjectAltName. */
export function agentClientCert(dir: string, ca: PemPair, host: string): PemPair {
  return issueCert(dir, ca, { name: `client-${host}`, commonName: host, altNames: [`DNS:${host}`], usage: 'clientAuth' });
}
