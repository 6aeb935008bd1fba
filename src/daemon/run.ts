import type { Logger } from 'pino';
import type { Backend } from '../backend/backend.js';
import { SgioBackend } from '../backend/sgio-backend.js';
import { traceSelects, type DaemonOptions } from '../cli/options.js';
import { createLogging, levelFor, LogFileError, type Logging } from '../log/logger.js';
import type { MetricsAddress } from '../observe/metrics-address.js';
import type { MetricsEndpoint } from '../observe/metrics-endpoint.js';
import type { MetricsSources } from '../observe/metrics.js';
import { Monitor } from '../observe/monitor.js';
import { openStatusSocket, statusSocketPath } from '../observe/status-socket.js';
import * as native from '../native/binding.js';
import { createListenSocket, unlinkQuietly } from '../server/listen-socket.js';
import { HelperServer } from '../server/server.js';
import { resolveGroup, resolveUser } from './accounts.js';
import { daemonize, reportToParent } from './daemonize.js';
import { takeHandover, type Handover } from './handover.js';
import { notifySystemd } from './notify.js';
import { createPidfile, removePidfile, type Pidfile } from './pidfile.js';
import { CAP_SYS_RAWIO, dropPrivilegesAndReexec, verifyDroppedPrivileges } from './privileges.js';
import { checkSocketActivation } from './socket-activation.js';

/** A start-up failure: printed as one line, exit status 1. */
export class StartupError extends Error {}

const RAWIO_MASK = 1n << BigInt(CAP_SYS_RAWIO);
const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
/** Far above the original's 1: simultaneous QEMU starts must not see EAGAIN. */
const LISTEN_BACKLOG = 64;

export type BackendFactory = (options: DaemonOptions, log: Logger) => Promise<Backend>;

async function defaultBackend(options: DaemonOptions, log: Logger): Promise<Backend> {
  if (options.simulate !== null) {
    const { createSimulatedBackend } = await import('../sim/simulated-backend.js');
    return createSimulatedBackend(options.simulate, log);
  }
  return new SgioBackend({ timeoutMs: options.sgioTimeoutMs, log });
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
      native.fstat(activation.fd);
    } catch {
      throw new StartupError(`Socket activation failed: invalid file descriptor fd = ${activation.fd}: Bad file descriptor`);
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
 * What the running daemon must end up with: as root always a drop (the
 * original keeps only CAP_SYS_RAWIO even without -u), elsewhere only when -u/-g
 * ask for another identity. null: run as started.
 */
function privilegePlan(options: DaemonOptions): { uid: number; gid: number; keep: bigint } | null {
  let uid: number;
  let gid: number;
  try {
    uid = options.user === null ? process.getuid!() : resolveUser(options.user);
    gid = options.group === null ? process.getgid!() : resolveGroup(options.group);
  } catch (err) {
    throw new StartupError((err as Error).message);
  }
  const asRoot = process.geteuid!() === 0;
  if (!asRoot && uid === process.getuid!() && gid === process.getgid!()) return null;
  if (!asRoot) throw new StartupError('Failed to drop privileges: Operation not permitted');
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

interface Started {
  listener: Listener;
  pidfile: Pidfile | null;
  readyFd: number | null;
}

/**
 * Start-up in the original's order (pr-helper-protocol.md 4.3): socket,
 * pidfile, privilege drop. A process that already did the first steps and
 * re-executed itself picks them up from the handover.
 */
function startUp(options: DaemonOptions, handover: Handover | null): Started {
  if (handover?.dropped) {
    verifyDroppedPrivileges(handover.dropped);
    return {
      listener: { fd: handover.listenFd!, ownPath: handover.ownPath },
      pidfile: handover.pidfile,
      readyFd: handover.readyFd,
    };
  }
  // SG_IO with PR opcodes needs CAP_SYS_RAWIO (pr-helper-protocol.md 4.3);
  // without it every command would fail with EPERM, and the privilege drop
  // could not keep it: fail before anything else.
  if (options.simulate === null && (native.capGet().effective & RAWIO_MASK) === 0n) {
    throw new StartupError('SG_IO needs CAP_SYS_RAWIO: run as root (or with AmbientCapabilities=CAP_SYS_RAWIO), or use --simulate');
  }
  const plan = privilegePlan(options);
  const listener = openListener(options);
  let pidfile: Pidfile | null = null;
  try {
    if (options.pidfile !== null) pidfile = createPidfile(options.pidfile);
    const readyFd = handover?.readyFd ?? null;
    if (plan) {
      const dropped = { uid: plan.uid, gid: plan.gid, capabilities: `0x${plan.keep.toString(16)}` };
      const carried = [listener.fd, ...(pidfile ? [pidfile.fd] : []), ...(readyFd !== null ? [readyFd] : [])];
      dropPrivilegesAndReexec(plan, { listenFd: listener.fd, ownPath: listener.ownPath, pidfile, readyFd, dropped }, carried);
    }
    return { listener, pidfile, readyFd };
  } catch (err) {
    if (listener.ownPath) unlinkQuietly(listener.ownPath);
    if (pidfile) removePidfile(pidfile);
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
  const handover = takeHandover();
  if (options.daemon && handover === null) {
    const code = await daemonize();
    if (code === 0) process.stderr.write(`pr-helper: running in the background; ${backgroundLogNote(options)}\n`);
    return code;
  }
  const tracesRequests = options.trace.some((pattern) => traceSelects(pattern, 'pr_helper_request'));
  const level = levelFor(tracesRequests ? Math.max(options.verbose, 1) : options.verbose, options.quiet);
  let logging: Logging;
  try {
    logging = createLogging({ level, format: options.logFormat, file: options.logFile });
  } catch (err) {
    if (!(err instanceof LogFileError)) throw err;
    reportToParent(handover?.readyFd ?? null, { ok: false, message: err.message });
    process.stderr.write(`pr-helper: ${err.message}\n`);
    return 1;
  }
  const log = logging.log;
  // SIGHUP stops the daemon like the original, so log rotation uses SIGUSR2.
  process.on('SIGUSR2', () => logging.reopen());
  const stopped = stopSignals(log);

  let started: Started | null = null;
  let backend: Backend;
  const monitor = new Monitor();
  let metrics: MetricsEndpoint | null = null;
  try {
    started = startUp(options, handover);
    backend = await createBackend(options, log);
    // The gauges read `server` only when scraped, which is after it exists.
    if (options.metrics) metrics = await openMetrics(options.metrics, { monitor, connections: () => server.connectionCount, inFlight: () => server.inFlight(), droppedLogLines: logging.droppedLines });
  } catch (err) {
    const message = (err as Error).message;
    if (started?.listener.ownPath) unlinkQuietly(started.listener.ownPath);
    if (started?.pidfile) removePidfile(started.pidfile);
    reportToParent(started?.readyFd ?? handover?.readyFd ?? null, { ok: false, message });
    if (err instanceof StartupError || (err as Error).name === 'ConfigError' || handover?.dropped) {
      process.stderr.write(`pr-helper: ${message}\n`);
      return 1;
    }
    throw err;
  }
  const { listener, pidfile, readyFd } = started;

  const server = new HelperServer({
    listenFd: listener.fd,
    backend,
    log,
    access: { allowUids: options.allowUids, allowGids: options.allowGids },
    maxConnections: options.maxConnections,
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
  log.info({ socket: socketName, backend: backend.name, uid: process.getuid!(), pidfile: pidfile?.path, metrics: metrics?.url }, 'accepting connections');
  notifySystemd(`READY=1\nSTATUS=serving ${socketName} (${backend.name})\nMAINPID=${process.pid}`);
  reportToParent(readyFd, { ok: true });

  const signal = await stopped;
  log.info({ signal, connections: server.connectionCount }, 'stopping');
  notifySystemd('STOPPING=1');
  await server.stop();
  status?.close();
  await metrics?.close();
  if (listener.ownPath) {
    const failure = unlinkQuietly(listener.ownPath);
    if (failure) log.warn({ socket: listener.ownPath, err: failure }, 'Failed to unlink socket');
  }
  if (pidfile) {
    const failure = removePidfile(pidfile);
    if (failure) log.warn({ pidfile: pidfile.path, err: failure }, 'Failed to remove pid file');
  }
  await backend.close();
  logging.repeated.flush();
  log.info('stopped');
  return 0;
}
