import { isIPv4, isIPv6 } from 'node:net';

/** Where --metrics listens. */
export type MetricsAddress = { readonly kind: 'unix'; readonly path: string } | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

/**
 * PATH (absolute: a Unix socket, mode 0600) or HOST:PORT ([::1]:PORT for
 * IPv6; port 0 takes any free port, which the log then names). The host must be a loopback address: the metrics name no secrets,
 * but the endpoint is an unauthenticated HTTP server in a privileged daemon,
 * and anything wider is a reverse proxy's job. Throws with a one-line reason.
 */
export function parseMetricsAddress(text: string): MetricsAddress {
  if (text.startsWith('/')) return { kind: 'unix', path: text };
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  if (!match) throw new Error(`--metrics takes an absolute socket path or HOST:PORT, got '${text}'`);
  const host = match[1] ?? match[2]!;
  const port = Number(match[3]);
  if (port > 65535) throw new Error(`--metrics port must be between 0 (any free port) and 65535, got ${match[3]}`);
  const loopback = host === 'localhost' || host === '::1' || (isIPv4(host) && host.startsWith('127.'));
  if (!loopback) {
    const what = isIPv4(host) || isIPv6(host) ? 'address' : 'host name';
    throw new Error(`--metrics listens on loopback (127.0.0.1, ::1, localhost) or a Unix socket only, got the ${what} '${host}'`);
  }
  return { kind: 'tcp', host, port };
}
