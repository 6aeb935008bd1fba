import type { Logger } from 'pino';
import type { Backend } from '../backend/backend.js';
import { SgioBackend } from '../backend/sgio-backend.js';
import type { DaemonOptions } from '../cli/options.js';
import * as native from '../native/binding.js';
import { createListenSocket, ListenError, unlinkQuietly } from '../server/listen-socket.js';
import { HelperServer } from '../server/server.js';
import { createLogger, levelFor } from './logger.js';
import { notifySystemd } from './notify.js';
import { checkSocketActivation } from './socket-activation.js';

/** A start-up failure: printed as one line, exit status 1. */
export class StartupError extends Error {}

const CAP_SYS_RAWIO = 17n;
const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
/** Far above the original's 1: simultaneous QEMU starts must not see EAGAIN. */
const LISTEN_BACKLOG = 64;

export interface BackendFactory {
  (options: DaemonOptions, log: Logger): Promise<Backend>;
}

async function defaultBackend(options: DaemonOptions, log: Logger): Promise<Backend> {
  if (options.simulate !== null) {
    const { createSimulatedBackend } = await import('../sim/simulated-backend.js');
    return createSimulatedBackend(options.simulate, log);
  }
  // SG_IO with PR opcodes needs CAP_SYS_RAWIO (pr-helper-protocol.md 4.3);
  // without it every command would fail later with EPERM, so fail now.
  if ((native.capGet().effective & (1n << CAP_SYS_RAWIO)) === 0n) {
    throw new StartupError('SG_IO needs CAP_SYS_RAWIO: run as root (or with AmbientCapabilities=CAP_SYS_RAWIO), or use --simulate');
  }
  return new SgioBackend({ timeoutMs: options.sgioTimeoutMs, log });
}

function groupId(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  throw new StartupError(`invalid group '${name}'`);
}

interface Listener {
  fd: number;
  /** The path we created and must unlink on exit; null for an activated socket. */
  ownPath: string | null;
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
    const fd = createListenSocket(options.socket, {
      mode: options.socketMode,
      gid: options.socketGroup === null ? undefined : groupId(options.socketGroup),
      backlog: LISTEN_BACKLOG,
    });
    return { fd, ownPath: options.socket };
  } catch (err) {
    if (err instanceof ListenError) throw new StartupError(err.message);
    throw err;
  }
}

function nextStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const handler = (signal: NodeJS.Signals) => {
      STOP_SIGNALS.forEach((s) => process.off(s, handler));
      resolve(signal);
    };
    STOP_SIGNALS.forEach((s) => process.on(s, handler));
  });
}

/**
 * The daemon from start to exit: backend, socket, serve until a stop signal,
 * drain, clean up. Returns the exit status.
 */
export async function runDaemon(options: DaemonOptions, createBackend: BackendFactory = defaultBackend): Promise<number> {
  const log = createLogger({ level: levelFor(options.verbose, options.quiet), format: options.logFormat });
  const stopped = nextStopSignal();
  let backend: Backend;
  let listener: Listener;
  try {
    backend = await createBackend(options, log);
    listener = openListener(options);
  } catch (err) {
    if (err instanceof StartupError || (err as Error).name === 'ConfigError') {
      process.stderr.write(`pr-helper: ${(err as Error).message}\n`);
      return 1;
    }
    throw err;
  }

  const server = new HelperServer({
    listenFd: listener.fd,
    backend,
    log,
    access: { allowUids: options.allowUids, allowGids: options.allowGids },
    maxConnections: options.maxConnections,
  });
  server.start();
  const socketName = listener.ownPath ?? `fd ${listener.fd} (socket activation)`;
  log.info({ socket: socketName, backend: backend.name }, 'accepting connections');
  notifySystemd(`READY=1\nSTATUS=serving ${socketName} (${backend.name})\nMAINPID=${process.pid}`);

  const signal = await stopped;
  log.info({ signal, connections: server.connectionCount }, 'stopping');
  notifySystemd('STOPPING=1');
  await server.stop();
  if (listener.ownPath) {
    const failure = unlinkQuietly(listener.ownPath);
    if (failure) log.warn({ socket: listener.ownPath, err: failure }, 'Failed to unlink socket');
  }
  await backend.close();
  log.info('stopped');
  return 0;
}
