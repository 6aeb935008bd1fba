import { Command, CommanderError, Option } from 'commander';
import type { DaemonOptions } from '../daemon/daemon-options.js';
import { TRACE_EVENTS } from '../log/trace-events.js';
import { parseMetricsAddress, type MetricsAddress } from '../observe/metrics-address.js';

export const PROGRAM = 'pr-helper';
export const DEFAULT_SOCKET = '/var/run/qemu-pr-helper.sock';
export const DEFAULT_PIDFILE = '/var/run/qemu-pr-helper.pid';
export const DEFAULT_SGIO_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_SGIO_COMMANDS = 256;
export const DEFAULT_MAX_DEVICE_COMMANDS = 64;
export const DEFAULT_MAX_CONNECTIONS = 1024;
export const DEFAULT_MAX_CONNECTIONS_PER_UID = 512;
export const DEFAULT_FRAME_TIMEOUT_MS = 10_000;
export const DEFAULT_SIM_MAX_LUNS = 1024;



/**
 * One -T argument in QEMU's syntax, `[enable=]PATTERN[,events=FILE][,file=FILE]`
 * (qemu_trace_opts): the patterns select our events, file= is where the log
 * goes. events= (patterns read from a file) is refused rather than ignored.
 */
export function parseTraceSpec(spec: string): { patterns: string[]; file: string | null } {
  const patterns: string[] = [];
  let file: string | null = null;
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? 'enable' : part.slice(0, eq);
    const value = eq < 0 ? part : part.slice(eq + 1);
    if (key === 'enable') {
      if (value !== '') patterns.push(value);
    } else if (key === 'file') {
      if (value === '') throw new UsageError(`-T ${spec}: file= needs a path`);
      file = value;
    } else if (key === 'events') {
      throw new UsageError(`-T ${spec}: events= is not supported; give the event patterns with -T PATTERN ('-T help' lists them)`);
    } else {
      throw new UsageError(`-T ${spec}: unknown key '${key}' (QEMU's keys are enable=, events= and file=)`);
    }
  }
  return { patterns, file };
}

/** --log-file and every -T file= must agree on one log file. */
function logFileOf(logFile: string | undefined, traceFiles: readonly string[]): string | null {
  const files = new Set([...(logFile === undefined ? [] : [logFile]), ...traceFiles]);
  if (files.size > 1) throw new UsageError(`one log file only, got ${[...files].map((f) => `'${f}'`).join(' and ')} (--log-file, -T file=)`);
  const [file] = files;
  if (file !== undefined && !file.startsWith('/')) throw new UsageError(`log file path must be absolute, got '${file}'`);
  return file ?? null;
}

export type ParseOutcome =
  | { kind: 'run'; options: DaemonOptions }
  | { kind: 'exit'; code: number; stdout?: string; stderr?: string };

/** A user error: one line on stderr, exit 1. */
export class UsageError extends Error {}

function integer(name: string, min: number, max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) throw new UsageError(`${name} must be a number, got '${value}'`);
    const n = Number(value);
    if (n < min || n > max) throw new UsageError(`${name} must be between ${min} and ${max}, got ${value}`);
    return n;
  };
}

function collect<T>(parse: (v: string) => T) {
  return (value: string, previous: T[]): T[] => [...previous, ...value.split(',').map(parse)];
}

// Dispatched in main.ts before these options are parsed, so commander does not know them.
const SUBCOMMANDS_HELP = `
Subcommands (each has its own --help):
  client [options] ACTION...  send PERSISTENT RESERVE IN/OUT through a running helper
  check [options]             diagnose a helper socket step by step
`;

function buildProgram(version: string): Command {
  return new Command(PROGRAM)
    .description('SCSI persistent reservation helper for QEMU (drop-in for qemu-pr-helper)')
    .version(`${PROGRAM} ${version}`, '-V, --version', 'output version information and exit')
    .helpOption('-h, --help', 'display this help and exit')
    .usage('[OPTIONS] FILE')
    .argument('[ignored...]', 'ignored, like qemu-pr-helper')
    .option('-d, --daemon', 'run in the background')
    .option('-f, --pidfile <path>', `PID file when running as a daemon (default '${DEFAULT_PIDFILE}')`)
    .option('-k, --socket <path>', `path to the unix socket (default '${DEFAULT_SOCKET}')`)
    .option('-T, --trace <spec>', "what to trace ('help' lists it), QEMU syntax [enable=]PATTERN[,file=FILE]; may be repeated", (v: string, prev: string[]) => [...prev, v], [])
    .option('-u, --user <user>', 'user to drop privileges to')
    .option('-g, --group <group>', 'group to drop privileges to')
    .option('-v, --verbose', 'increase verbosity (repeatable)', (_v: string, prev: number) => prev + 1, 0)
    .option('-q, --quiet', 'only log errors')
    .option('--simulate [config]', 'serve a simulated shared SCSI disk instead of real devices (no root needed)')
    .option('--sim-max-luns <n>', 'with --simulate and no config: logical units made on demand; beyond: LOGICAL UNIT NOT SUPPORTED', integer('--sim-max-luns', 1, 1_000_000), DEFAULT_SIM_MAX_LUNS)
    .option('--socket-mode <octal>', 'permission bits of the created socket', '0600')
    .option('--socket-group <group>', 'group owning the created socket')
    .option('--allow-uid <uids>', 'serve only these peer uids (comma separated; repeatable)', collect(integer('--allow-uid', 0, 0xfffffffe)), [])
    .option('--allow-gid <gids>', 'serve only these peer gids (comma separated; repeatable)', collect(integer('--allow-gid', 0, 0xfffffffe)), [])
    .addOption(new Option('--log-format <format>', 'log lines as JSON or as text (default: text under journald, else json)').choices(['json', 'pretty']))
    .option('--log-file <path>', 'append the log to this file instead of stderr (reopened on SIGUSR2)')
    .option('--sgio-timeout <ms>', 'SG_IO timeout in milliseconds', integer('--sgio-timeout', 1, 3_600_000), DEFAULT_SGIO_TIMEOUT_MS)
    .option('--max-sgio-commands <n>', 'SG_IO commands (each on its own thread) in flight in all; beyond: BUSY', integer('--max-sgio-commands', 1, 4096), DEFAULT_MAX_SGIO_COMMANDS)
    .option('--max-device-commands <n>', 'SG_IO commands in flight on one device; beyond: BUSY', integer('--max-device-commands', 1, 4096), DEFAULT_MAX_DEVICE_COMMANDS)
    .option('--allow-partial-devices', 'serve PR on partitions and partial device-mapper devices (it acts on the whole LUN)')
    .option('--max-connections <n>', 'close connections beyond this many', integer('--max-connections', 1, 1_000_000), DEFAULT_MAX_CONNECTIONS)
    .option('--max-connections-per-uid <n>', 'close connections of one peer uid beyond this many', integer('--max-connections-per-uid', 1, 1_000_000), DEFAULT_MAX_CONNECTIONS_PER_UID)
    .option('--frame-timeout <ms>', 'close a connection whose handshake or started request takes longer (0: never); idle connections stay open', integer('--frame-timeout', 0, 3_600_000), DEFAULT_FRAME_TIMEOUT_MS)
    .option('--metrics <address>', 'serve Prometheus metrics at http://ADDRESS/metrics: a Unix socket PATH or loopback HOST:PORT', metricsAddress)
    .allowExcessArguments(true)
    .addHelpText('after', SUBCOMMANDS_HELP)
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {} });
}

function metricsAddress(value: string): MetricsAddress {
  try {
    return parseMetricsAddress(value);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function parseMode(value: string): number {
  if (!/^0?[0-7]{3}$/.test(value)) throw new UsageError(`--socket-mode must be octal like 0660, got '${value}'`);
  return parseInt(value, 8);
}

/** Parses argv (without node and script) the way qemu-pr-helper does, plus our options. */
export function parseArguments(argv: readonly string[], version: string): ParseOutcome {
  const program = buildProgram(version);
  let out = '';
  program.configureOutput({ writeOut: (s) => (out += s), writeErr: () => {} });
  try {
    program.parse([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return { kind: 'exit', code: 0, stdout: out || program.helpInformation() };
      return { kind: 'exit', code: 1, stderr: `${PROGRAM}: ${err.message.replace(/^error: /, '')}\nTry '${PROGRAM} --help' for more information.\n` };
    }
    if (err instanceof UsageError) return { kind: 'exit', code: 1, stderr: `${PROGRAM}: ${err.message}\n` };
    throw err;
  }
  const o = program.opts();
  if ((o.trace as string[]).includes('help')) {
    const lines = Object.entries(TRACE_EVENTS).map(([name, what]) => `${name}  ${what}\n`);
    return { kind: 'exit', code: 0, stdout: lines.join('') };
  }
  try {
    const traces = (o.trace as string[]).map(parseTraceSpec);
    const socket: string = o.socket ?? DEFAULT_SOCKET;
    if (!socket.startsWith('/')) throw new UsageError('socket path must be absolute');
    if (Buffer.byteLength(socket) > 107) throw new UsageError(`UNIX socket path '${socket}' is too long`);
    return {
      kind: 'run',
      options: {
        socket,
        socketGiven: o.socket !== undefined,
        pidfile: o.pidfile ?? (o.daemon ? DEFAULT_PIDFILE : null),
        daemon: Boolean(o.daemon),
        trace: traces.flatMap((t) => t.patterns),
        user: o.user ?? null,
        group: o.group ?? null,
        verbose: o.verbose,
        quiet: Boolean(o.quiet),
        simulate: o.simulate === undefined ? null : o.simulate === true ? '' : String(o.simulate),
        socketMode: parseMode(o.socketMode),
        socketGroup: o.socketGroup ?? null,
        allowUids: o.allowUid,
        allowGids: o.allowGid,
        logFormat: o.logFormat ?? null,
        logFile: logFileOf(o.logFile, traces.flatMap((t) => (t.file === null ? [] : [t.file]))),
        sgioTimeoutMs: o.sgioTimeout,
        allowPartialDevices: Boolean(o.allowPartialDevices),
        maxSgioCommands: o.maxSgioCommands,
        maxDeviceCommands: o.maxDeviceCommands,
        maxConnections: o.maxConnections,
        simMaxLuns: o.simMaxLuns,
        maxConnectionsPerUid: o.maxConnectionsPerUid,
        frameTimeoutMs: o.frameTimeout,
        metrics: o.metrics ?? null,
      },
    };
  } catch (err) {
    if (err instanceof UsageError) return { kind: 'exit', code: 1, stderr: `${PROGRAM}: ${err.message}\n` };
    throw err;
  }
}
