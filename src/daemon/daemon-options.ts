import type { LogFormat } from '../log/format.js';
import type { MetricsAddress } from '../observe/metrics-address.js';

/** Everything the daemon is told at start; the command line (src/cli/options.ts) is one way to fill it. */
export interface DaemonOptions {
  socket: string;
  /** Set when -k was given (socket activation refuses it). */
  socketGiven: boolean;
  pidfile: string | null;
  daemon: boolean;
  /** Event patterns selected with -T (globs), without QEMU's file=/enable= keys. */
  trace: string[];
  user: string | null;
  group: string | null;
  verbose: number;
  quiet: boolean;
  /** null: SG_IO on real devices; '' : simulated disk with the embedded default; else a config path. */
  simulate: string | null;
  socketMode: number;
  socketGroup: string | null;
  allowUids: number[];
  allowGids: number[];
  /** null: chosen by destination (pretty under journald, else json). */
  logFormat: LogFormat | null;
  /** --log-file or -T file=: append the log here instead of stderr. */
  logFile: string | null;
  sgioTimeoutMs: number;
  /** --allow-partial-devices: PR on partitions and partial dm devices, as the original. */
  allowPartialDevices: boolean;
  /** --max-sgio-commands: SG_IO commands (threads) in flight in all. */
  maxSgioCommands: number;
  /** --max-device-commands: SG_IO commands in flight on one device. */
  maxDeviceCommands: number;
  maxConnections: number;
  /** --sim-max-luns: logical units the embedded simulated default makes on demand. */
  simMaxLuns: number;
  maxConnectionsPerUid: number;
  /** --frame-timeout: handshake and rest-of-request timeout (ms); 0: none. */
  frameTimeoutMs: number;
  /** --metrics: where to serve Prometheus metrics; null: nowhere. */
  metrics: MetricsAddress | null;
}
