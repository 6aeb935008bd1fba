/**
 * `pr-helper status`: asks a running daemon through its status socket
 * (SOCKET.status next to the helper socket, or the socket-activated default)
 * and prints uptime, backend, connections with their peers and VMs, the
 * commands in flight with device and age, and the counters.
 */
import { Command } from 'commander';
import { closeSync, existsSync } from 'node:fs';
import { FdStream } from '../io/fd-stream.js';
import * as native from '../native/binding.js';
import { formatStatus, type StatusDocument } from '../observe/status.js';
import { ACTIVATED_STATUS_SOCKET, statusSocketPath } from '../observe/status-socket.js';
import { processOutput, type Output } from './client-command.js';
import { DEFAULT_SOCKET, PROGRAM } from './options.js';
import { parseSubcommandArgs } from './subcommand-args.js';

const COMMAND = `${PROGRAM} status`;
const READ_TIMEOUT_MS = 5000;

function buildProgram(): Command {
  return new Command(COMMAND)
    .description("Show what a running daemon is doing: uptime, connections and their VMs, commands in flight, counters.")
    .usage('[-k SOCKET] [--json]')
    .helpOption('-h, --help', 'display this help and exit')
    .option('-k, --socket <path>', `the daemon's helper socket; its status socket is PATH.status (default: ${DEFAULT_SOCKET}.status, else ${ACTIVATED_STATUS_SOCKET})`)
    .option('--json', 'print the status document as JSON')
    .addHelpText('after', '\nOnly root and the user the daemon runs as may ask.\nExit status: 0 when the daemon answered, 1 otherwise.\n')
    .allowExcessArguments(false)
    .exitOverride();
}

/** Reads the one JSON line the daemon sends, until it closes. */
async function ask(path: string): Promise<StatusDocument> {
  const stream = new FdStream(native.connectUnix(path));
  const timer = setTimeout(() => stream.close(), READ_TIMEOUT_MS);
  const chunks: Buffer[] = [];
  try {
    for (;;) {
      const chunk = await stream.read(65536);
      if (!chunk) break;
      chunk.fds.forEach((fd) => closeSync(fd));
      chunks.push(Buffer.from(chunk.data));
    }
  } finally {
    clearTimeout(timer);
    stream.close();
  }
  const text = Buffer.concat(chunks).toString();
  if (text === '') throw new Error('the daemon closed the status socket without an answer (root or the daemon user only)');
  return JSON.parse(text) as StatusDocument;
}

function failure(path: string, err: Error): string {
  const code = (err as native.SystemError).code;
  if (code === 'EACCES') return `permission denied on ${path}: only root and the user the daemon runs as may ask`;
  if (code === 'ECONNREFUSED') return `nothing listens on ${path} (a stale socket of a stopped daemon?)`;
  return `${path}: ${err.message}`;
}

/** `pr-helper status ARGS`: returns the exit status. */
export async function runStatusCommand(argv: readonly string[], io: Output = processOutput): Promise<number> {
  const program = buildProgram();
  const exit = parseSubcommandArgs(program, argv, io);
  if (exit !== null) return exit;
  const o = program.opts<{ socket?: string; json?: boolean }>();
  const candidates = o.socket ? [statusSocketPath(o.socket)] : [statusSocketPath(DEFAULT_SOCKET), ACTIVATED_STATUS_SOCKET];
  const path = candidates.find((p) => existsSync(p));
  if (!path) {
    io.err(`${COMMAND}: no status socket at ${candidates.join(' or ')}: is pr-helper running? (a daemon started with -k SOCKET has SOCKET.status)\n`);
    return 1;
  }
  let doc: StatusDocument;
  try {
    doc = await ask(path);
  } catch (err) {
    io.err(`${COMMAND}: ${failure(path, err as Error)}\n`);
    return 1;
  }
  io.out(o.json ? JSON.stringify(doc, null, 2) + '\n' : formatStatus(doc));
  return 0;
}
