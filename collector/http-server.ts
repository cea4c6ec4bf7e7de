// The plain-HTTP port of the collector and of the agent, for probes and
// scrapers: /healthz answers "ok" while the process serves, /metrics is the
// Prometheus exposition of the given registry.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { formatListenAddress, parseListenAddress } from './listen-address.js';

/** What a scrape reads: the collector's or the agent's metrics. */
export interface MetricsExposition {
  readonly contentType: string;
  exposition(): Promise<string>;
}

export interface HttpServerOptions {
  /** host:port; port 0 picks a free one. */
  address: string;
  metrics: MetricsExposition;
  log: Logger;
}

export interface RunningHttpServer {
  /** host:port actually bound. */
  address: string;
  close(): Promise<void>;
}

export async function startHttpServer(opts: HttpServerOptions): Promise<RunningHttpServer> {
  const { host, port } = parseListenAddress(opts.address);
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('ok\n');
      return;
    }
    if (path === '/metrics' && req.method === 'GET') {
      opts.metrics.exposition().then(
        (text) => res.writeHead(200, { 'content-type': opts.metrics.contentType }).end(text),
        (err: unknown) => {
          opts.log.error({ err }, 'metrics exposition failed');
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics unavailable\n');
        },
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`no ${req.method} ${path} here; try GET /healthz or /metrics\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => opts.log.error({ err }, 'http server failed'));
  const bound = formatListenAddress({ host, port: (server.address() as AddressInfo).port });
  opts.log.info({ address: bound }, 'http listening');
  return {
    address: bound,
    close: () => new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}
