// "host:port" addresses as given to --grpc / --http, IPv6 hosts in brackets.
import { BlockList, isIP } from 'node:net';

export interface ListenAddress {
  /** Without brackets, as net.Server.listen wants it. */
  host: string;
  /** 0 asks the kernel for a free port. */
  port: number;
}

export function parseListenAddress(text: string): ListenAddress {
  const colon = text.lastIndexOf(':');
  const host = text.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const portText = text.slice(colon + 1);
  const port = Number(portText);
  if (colon <= 0 || !host || !/^\d+$/.test(portText) || port > 65535) {
    throw new Error(`listen address ${JSON.stringify(text)} is not host:port (e.g. 127.0.0.1:0 or [::1]:8080)`);
  }
  return { host, port };
}

export function formatListenAddress({ host, port }: ListenAddress): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** Whether only this machine can reach `host`: 127.0.0.0/8, ::1 (also spelled out or IPv4-mapped) or "localhost". */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const family = isIP(host);
  return family !== 0 && LOOPBACK.check(host, family === 4 ? 'ipv4' : 'ipv6');
}
