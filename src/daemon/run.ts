import { fstatSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Backend } from '../backend/backend.js';
import { SgioBackend } from '../backend/sgio-backend.js';
import { createLogging, levelFor, LogFileError, type Logging } from '../log/logger.js';
import { traceSelects } from '../log/trace-events.js';
import type { MetricsAddress } from '../observe/metrics-address.js';
import type { MetricsEndpoint } from '../observe/metrics-endpoint.js';
import type { MetricsSources } from '../observe/metrics.js';
import { Monitor } from '../observe/monitor.js';
import { openStatusSocket, statusSocketPath } from '../observe/status-socket.js';
import * as native from '../native/binding.js';
import { createListenSocket, unlinkQuietly } from '../server/listen-socket.js';
import { HelperServer } from '../server/server.js';
import { resolveGroup, resolveUser } from './accounts.js';
import type { DaemonOptions } from './daemon-options.js';
import { daemonize, reportToParent, takeReadyFd } from './daemonize.js';
import { limitOpenFiles } from './file-limit.js';
import { systemdNotifier } from './notify.js';
import { createPidfile, removePidfile, type Pidfile } from './pidfile.js';
import { CAP_SYS_RAWIO, dropPrivileges, type PrivilegeTarget } from './privileges.js';
import { checkSocketActivation } from './socket-activation.js';

/** A start-up failure: printed as one line, exit status 1. */
export class StartupError extends Error {}

const RAWIO_MASK = 1n << BigInt(CAP_SYS_RAWIO);
const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
/** Far above the original's 1: simultaneous QEMU starts must not see EAGAIN. */
const LISTEN_BACKLOG = 64;

export type BackendFactory = (options: DaemonOptions, log: Logger) => Promise<Backend>;

/** The simulator's modules, imported before the privilege drop. */
const loadSimulator = () => import('../sim/simulated-backend.js');

async function defaultBackend(options: DaemonOptions, log: Logger): Promise<Backend> {
  if (options.simulate !== null) return (await loadSimulator()).createSimulatedBackend(options.simulate, log, { maxLuns: options.simMaxLuns });
  return new SgioBackend({
    timeoutMs: options.sgioTimeoutMs,
    log,
    allowPartialDevices: options.allowPartialDevices,
    maxCommands: options.maxSgioCommands,
    maxDeviceCommands: options.maxDeviceCommands,
  });
}

interface Listener {
  readonly fd: number;
  /** The path we created and must unlink on exit; null for an activated socket. */
  readonly ownPath: string | null;
}

function openListener(options: DaemonOptions): Listener {
  const activation = checkSocketActivation(process.env, process.pid, options.socketGiven, 'pr-helper');
  if (activation.kind === 'error') throw new StartupError(activation.message);
  if (activation.kind === 'activated') {
    try {
      fstatSync(activation.fd);
    } catch {
      throw new StartupError(`Socket activation failed: invalid file descriptor fd = ${activation.fd}: Bad file descriptor`);
    }
    if (!native.isListeningUnixSocket(activation.fd)) {
      throw new StartupError(`Socket activation failed: fd ${activation.fd} is not a listening Unix stream socket`);
    }
    native.setCloseOnExec(activation.fd, true);
    native.setStatusFlags(activation.fd, native.getStatusFlags(activation.fd) | native.O_NONBLOCK);
    return { fd: activation.fd, ownPath: null };
  }
  try {
    const gid = options.socketGroup === null ? undefined : resolveGroup(options.socketGroup);
    return { fd: createListenSocket(options.socket, { mode: options.socketMode, gid, backlog: LISTEN_BACKLOG }), ownPath: options.socket };
  } catch (err) {
    throw new StartupError((err as Error).message);
  }
}

/**
 * What the serving daemon must run as. As root always a drop: the original
 * keeps only CAP_SYS_RAWIO even without -u, and simulated mode needs no
 * capability at all. Elsewhere -u/-g may only name the identity we already
 * have, and extra capabilities a supervisor granted are dropped too.
 */
function privilegeTarget(options: DaemonOptions): PrivilegeTarget {
  let uid: number;
  let gid: number;
  try {
    uid = options.user === null ? process.getuid!() : resolveUser(options.user);
    gid = options.group === null ? process.getgid!() : resolveGroup(options.group);
  } catch (err) {
    throw new StartupError((err as Error).message);
  }
  if (process.geteuid!() !== 0 && (uid !== process.getuid!() || gid !== process.getgid!())) {
    throw new StartupError('Failed to drop privileges: Operation not permitted');
  }
  return { uid, gid, keep: options.simulate === null ? RAWIO_MASK : 0n };
}

/**
 * Resolves on the first SIGTERM/SIGINT/SIGHUP. The handlers stay installed:
 * a second signal while executing commands drain must not kill the daemon
 * with Node's default action, cutting replies off and leaving the socket.
 */
function stopSignals(log: Logger): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let first: NodeJS.Signals | null = null;
    const handler = (signal: NodeJS.Signals) => {
      if (first) {
        log.warn({ signal }, 'already stopping: waiting for executing commands to reply');
        return;
      }
      first = signal;
      resolve(signal);
    };
    STOP_SIGNALS.forEach((s) => process.on(s, handler));
  });
}

/** What start-up created and exit must remove: filled in as each is made. */
interface Created {
  listener: Listener | null;
  pidfile: Pidfile | null;
}

/**
 * The one clean-up path, for a failed start and for a normal exit alike:
 * unlinks the socket we bound (never an activated one) and the pidfile.
 * Failures are logged when there is a log to write them to.
 */
function removeCreated(created: Created, log: Logger | null): void {
  if (created.listener?.ownPath) {
    const failure = unlinkQuietly(created.listener.ownPath);
    if (failure) log?.warn({ socket: created.listener.ownPath, err: failure }, 'Failed to unlink socket');
  }
  if (created.pidfile) {
    const failure = removePidfile(created.pidfile);
    if (failure) log?.warn({ pidfile: created.pidfile.path, err: failure }, 'Failed to remove pid file');
  }
}

/**
 * Start-up in the original's order (scsi/qemu-pr-helper.c main()): socket,
 * pidfile, privilege drop. The drop happens in this process, so descriptors
 * the starter left open stay open; what the daemon runs later must already be
 * loaded, since a dropped user may not be able to read the installation.
 * Returns the number of threads the drop changed and the soft descriptor limit set.
 */
async function startUp(options: DaemonOptions, created: Created): Promise<{ threads: number; openFiles: number }> {
  // SG_IO with PR opcodes needs CAP_SYS_RAWIO (the kernel's SCSI command
  // filter, blk_verify_command/scsi_cmd_allowed); without it every command
  // would fail with EPERM, and the drop could not keep it: fail first.
  if (options.simulate === null && (native.capGet().effective & RAWIO_MASK) === 0n) {
    throw new StartupError('SG_IO needs CAP_SYS_RAWIO: run as root (or with AmbientCapabilities=CAP_SYS_RAWIO), or use --simulate');
  }
  const target = privilegeTarget(options);
  const openFiles = limitOpenFiles(options).soft;
  created.listener = openListener(options);
  try {
    if (options.pidfile !== null) created.pidfile = createPidfile(options.pidfile);
    if (options.simulate !== null) await loadSimulator();
    return { threads: dropPrivileges(target).threads, openFiles };
  } catch (err) {
    throw err instanceof StartupError ? err : new StartupError((err as Error).message);
  }
}

/** prom-client is loaded only here, when --metrics asks for it: it takes ~75 ms. */
async function openMetrics(address: MetricsAddress, sources: MetricsSources): Promise<MetricsEndpoint> {
  const { startMetrics } = await import('../observe/metrics-endpoint.js');
  try {
    return await startMetrics(address, sources);
  } catch (err) {
    throw new StartupError(`--metrics: cannot listen: ${(err as Error).message}`);
  }
}

/** -d detaches from stderr: say where the log goes instead. */
function backgroundLogNote(options: DaemonOptions): string {
  if (options.logFile !== null) return `its log goes to ${options.logFile}`;
  return 'its log is discarded (stderr is /dev/null): give --log-file PATH to keep it';
}

/**
 * The daemon from start to exit: socket, pidfile, privileges, backend, serve
 * until a stop signal, drain, clean up. Returns the exit status.
 */
export async function runDaemon(options: DaemonOptions, createBackend: BackendFactory = defaultBackend): Promise<number> {
  const notify = systemdNotifier();
  const ready = takeReadyFd();
  if (options.daemon && !ready.detached) {
    const code = await daemonize();
    if (code === 0) process.stderr.write(`pr-helper: running in the background; ${backgroundLogNote(options)}\n`);
    return code;
  }
  const readyFd = ready.fd;
  const tracesRequests = options.trace.some((pattern) => traceSelects(pattern, 'pr_helper_request'));
  const level = levelFor(tracesRequests ? Math.max(options.verbose, 1) : options.verbose, options.quiet);
  let logging: Logging;
  try {
    logging = createLogging({ level, format: options.logFormat, file: options.logFile });
  } catch (err) {
    if (!(err instanceof LogFileError)) throw err;
    reportToParent(readyFd, { ok: false, message: err.message });
    process.stderr.write(`pr-helper: ${err.message}\n`);
    return 1;
  }
  const log = logging.log;
  // SIGHUP stops the daemon like the original, so log rotation uses SIGUSR2.
  process.on('SIGUSR2', () => logging.reopen());
  const stopped = stopSignals(log);

  const created: Created = { listener: null, pidfile: null };
  let started: { threads: number; openFiles: number };
  let backend: Backend;
  const monitor = new Monitor();
  let metrics: MetricsEndpoint | null = null;
  try {
    started = await startUp(options, created);
    backend = await createBackend(options, log);
    // The gauges read `server` only when scraped, which is after it exists.
    if (options.metrics) metrics = await openMetrics(options.metrics, { monitor, connections: () => server.connectionCount, inFlight: () => server.inFlight(), droppedLogLines: logging.droppedLines });
  } catch (err) {
    const message = (err as Error).message;
    removeCreated(created, null);
    reportToParent(readyFd, { ok: false, message });
    if (err instanceof StartupError || (err as Error).name === 'ConfigError' || created.listener !== null) {
      process.stderr.write(`pr-helper: ${message}\n`);
      return 1;
    }
    throw err;
  }
  const listener = created.listener!;
  const pidfile = created.pidfile;

  const server = new HelperServer({
    listenFd: listener.fd,
    backend,
    log,
    access: { allowUids: options.allowUids, allowGids: options.allowGids },
    maxConnections: options.maxConnections,
    maxConnectionsPerUid: options.maxConnectionsPerUid,
    ...(options.frameTimeoutMs > 0 ? { frameTimeoutMs: options.frameTimeoutMs } : {}),
    repeated: logging.repeated,
    monitor,
  });
  server.start();
  const socketName = listener.ownPath ?? `fd ${listener.fd} (socket activation)`;
  const status = openStatusSocket(
    statusSocketPath(listener.ownPath),
    () => ({
      pid: process.pid,
      startedAt: new Date(monitor.startedAt).toISOString(),
      uptimeSeconds: (Date.now() - monitor.startedAt) / 1000,
      backend: backend.name,
      socket: socketName,
      log: logging.destination,
      metrics: metrics?.url ?? null,
      counters: { ...monitor.counters, logLinesDropped: logging.droppedLines() },
      inFlight: server.inFlight(),
      connections: server.connectionViews(),
    }),
    log,
  );
  log.info({ socket: socketName, backend: backend.name, uid: process.getuid!(), gid: process.getgid!(), ...started, pidfile: pidfile?.path, metrics: metrics?.url }, 'accepting connections');
  notify(`READY=1\nSTATUS=serving ${socketName} (${backend.name})\nMAINPID=${process.pid}`);
  reportToParent(readyFd, { ok: true });

  const signal = await stopped;
  log.info({ signal, connections: server.connectionCount }, 'stopping');
  notify('STOPPING=1');
  await server.stop();
  status?.close();
  await metrics?.close();
  removeCreated(created, log);
  await backend.close();
  logging.repeated.flush();
  log.info('stopped');
  return 0;
}
