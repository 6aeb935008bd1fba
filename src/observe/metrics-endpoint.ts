import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { createListenSocket, unlinkQuietly } from '../server/listen-socket.js';
import type { MetricsAddress } from './metrics-address.js';
import { createMetrics, type MetricsSources } from './metrics.js';

export interface MetricsEndpoint {
  /** Where to scrape, e.g. http://127.0.0.1:9100/metrics or unix:/run/pr-helper/metrics.sock. */
  readonly url: string;
  /** Stops listening (and removes the socket file). */
  close(): Promise<void>;
}

/** An HTTP server answering GET /metrics with the registry's text exposition. */
export async function openMetricsEndpoint(address: MetricsAddress, registry: Registry): Promise<MetricsEndpoint> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('metrics are at /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  // A Unix socket is created with its mode from the start (like the helper's own socket): root and the daemon's user only.
  const target = address.kind === 'unix' ? { fd: createListenSocket(address.path, { mode: 0o600, backlog: 16 }) } : { host: address.host, port: address.port };
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(target, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address();
  const url =
    address.kind === 'unix' || bound === null || typeof bound === 'string'
      ? `unix:${address.kind === 'unix' ? address.path : String(bound)}`
      : `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}/metrics`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          if (address.kind === 'unix') unlinkQuietly(address.path);
          resolve();
        });
      }),
  };
}

/** --metrics: the registry over `sources`, served at `address`. */
export function startMetrics(address: MetricsAddress, sources: MetricsSources): Promise<MetricsEndpoint> {
  return openMetricsEndpoint(address, createMetrics(sources));
}
