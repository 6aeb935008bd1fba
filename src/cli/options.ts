import { Command, CommanderError, Option } from 'commander';
import type { LogFormat } from '../daemon/logger.js';

export const PROGRAM = 'pr-helper';
export const DEFAULT_SOCKET = '/var/run/qemu-pr-helper.sock';
export const DEFAULT_PIDFILE = '/var/run/qemu-pr-helper.pid';
export const DEFAULT_SGIO_TIMEOUT_MS = 30_000;

export interface DaemonOptions {
  socket: string;
  /** Set when -k was given (socket activation refuses it). */
  socketGiven: boolean;
  pidfile: string | null;
  daemon: boolean;
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
  logFormat: LogFormat;
  sgioTimeoutMs: number;
  maxConnections: number | undefined;
}

/**
 * What -T can switch on. QEMU's trace backends do not exist here; its
 * `[enable=]PATTERN` syntax selects these events, which go to the log.
 */
export const TRACE_EVENTS: Record<string, string> = {
  pr_helper_connection: 'connection opened/closed, with peer credentials (level info)',
  pr_helper_request: 'one line per request: service action, type, keys, status, sense, latency (level debug)',
};

/** Whether a -T spec selects `event` (glob with *, optional enable= prefix; events=/file= are ignored). */
export function traceSelects(spec: string, event: string): boolean {
  const pattern = spec.startsWith('enable=') ? spec.slice('enable='.length) : spec;
  if (pattern.includes('=')) return false;
  const regex = new RegExp('^' + pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
  return regex.test(event);
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
    .option('-T, --trace <spec>', "what to trace ('help' lists it); may be repeated", collect(String), [])
    .option('-u, --user <user>', 'user to drop privileges to')
    .option('-g, --group <group>', 'group to drop privileges to')
    .option('-v, --verbose', 'increase verbosity (repeatable)', (_v: string, prev: number) => prev + 1, 0)
    .option('-q, --quiet', 'only log errors')
    .option('--simulate [config]', 'serve a simulated shared SCSI disk instead of real devices (no root needed)')
    .option('--socket-mode <octal>', 'permission bits of the created socket', '0600')
    .option('--socket-group <group>', 'group owning the created socket')
    .option('--allow-uid <uids>', 'serve only these peer uids (comma separated; repeatable)', collect(integer('--allow-uid', 0, 0xfffffffe)), [])
    .option('--allow-gid <gids>', 'serve only these peer gids (comma separated; repeatable)', collect(integer('--allow-gid', 0, 0xfffffffe)), [])
    .addOption(new Option('--log-format <format>', 'log output').choices(['json', 'pretty']).default('json'))
    .option('--sgio-timeout <ms>', 'SG_IO timeout in milliseconds', integer('--sgio-timeout', 1, 3_600_000), DEFAULT_SGIO_TIMEOUT_MS)
    .option('--max-connections <n>', 'close connections beyond this many', integer('--max-connections', 1, 1_000_000))
    .allowExcessArguments(true)
    .addHelpText('after', SUBCOMMANDS_HELP)
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {} });
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
        trace: o.trace,
        user: o.user ?? null,
        group: o.group ?? null,
        verbose: o.verbose,
        quiet: Boolean(o.quiet),
        simulate: o.simulate === undefined ? null : o.simulate === true ? '' : String(o.simulate),
        socketMode: parseMode(o.socketMode),
        socketGroup: o.socketGroup ?? null,
        allowUids: o.allowUid,
        allowGids: o.allowGid,
        logFormat: o.logFormat,
        sgioTimeoutMs: o.sgioTimeout,
        maxConnections: o.maxConnections,
      },
    };
  } catch (err) {
    if (err instanceof UsageError) return { kind: 'exit', code: 1, stderr: `${PROGRAM}: ${err.message}\n` };
    throw err;
  }
}
