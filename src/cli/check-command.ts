/**
 * `pr-helper check`: walks the path from a client to the helper (socket
 * file, permission, handshake, and optionally a device and one READ KEYS),
 * stopping at the first failure with a hint on how to fix it.
 */
import { Command, InvalidArgumentError } from 'commander';
import { accessSync, closeSync, constants as fsConstants, openSync, readFileSync, statSync, type Stats } from 'node:fs';
import { HelperClient } from '../client/client.js';
import { FdStream } from '../io/fd-stream.js';
import * as native from '../native/binding.js';
import { CDB_SIZE, HANDSHAKE_SIZE, MAX_TRANSFER } from '../protocol/constants.js';
import { PrInAction } from '../scsi/pr-codes.js';
import { PrDataError } from '../scsi/pr-data.js';
import { decodeReadKeys, encodePrInCdb } from '../scsi/pr-in.js';
import { connectFailureHint, describeReply, processOutput, type Output } from './client-command.js';
import { DEFAULT_SOCKET, PROGRAM } from './options.js';
import { parseSubcommandArgs } from './subcommand-args.js';

const COMMAND = `${PROGRAM} check`;
const DEFAULT_TIMEOUT_MS = 3000;
/** A PR helper says nothing after the handshake until it gets a CDB; anything else within this window betrays another program. */
const POST_HANDSHAKE_QUIET_MS = 100;

export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
  /** What to do about a failure; null when ok. */
  readonly hint: string | null;
  readonly data?: Record<string, unknown>;
}

export interface Credentials {
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
}

export interface SocketInode {
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
}

export type PermissionClass = 'root' | 'owner' | 'group' | 'other';

/**
 * Which permission class of the socket applies to `who`, and whether its mode
 * bits grant write, which connect(2) on a Unix socket requires (unix(7)).
 * Root passes through CAP_DAC_OVERRIDE.
 */
export function socketWriteAccess(inode: SocketInode, who: Credentials): { allowed: boolean; via: PermissionClass } {
  if (who.uid === 0) return { allowed: true, via: 'root' };
  if (who.uid === inode.uid) return { allowed: (inode.mode & 0o200) !== 0, via: 'owner' };
  if (who.gid === inode.gid || who.groups.includes(inode.gid)) return { allowed: (inode.mode & 0o020) !== 0, via: 'group' };
  return { allowed: (inode.mode & 0o002) !== 0, via: 'other' };
}

function idNames(file: string): Map<number, string> {
  const names = new Map<number, string>();
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id && /^\d+$/.test(id)) names.set(Number(id), name);
    }
  } catch {
    // Names are decoration; numeric ids still say everything.
  }
  return names;
}

const octal = (mode: number): string => `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;

/** The failure hint for a socket `who` cannot write. Exported for tests. */
export function permissionHint(inode: SocketInode, who: Credentials, groupName: string): string {
  const { allowed, via } = socketWriteAccess(inode, who);
  if (allowed) {
    return 'the mode bits allow writing, yet access was denied: check ACLs (getfacl) and security labels (SELinux/AppArmor), and search permission on the parent directories';
  }
  if (via === 'owner') return `the socket's owner lacks write permission: start the helper with --socket-mode 0600 or wider`;
  return (
    `run the client as a member of group ${groupName} with group write on the socket ` +
    `(pr-helper --socket-group ${inode.gid} --socket-mode 0660, or SocketGroup=/SocketMode=0660 in pr-helper.socket), ` +
    `or allow uid ${who.uid} another way`
  );
}

function typeOf(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isCharacterDevice()) return 'a character device';
  return 'not a socket';
}

function checkSocket(socket: string): { result: CheckResult; stat: Stats | null } {
  let st: Stats;
  try {
    st = statSync(socket);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const hint =
      code === 'ENOENT'
        ? `start the helper (systemctl start pr-helper.socket, or pr-helper -k ${socket}), or pass the path the helper was started with (-k)`
        : code === 'EACCES'
          ? 'a parent directory is not searchable by this user; check the directory permissions'
          : 'check the path';
    return { result: { name: 'socket', ok: false, detail: `cannot stat ${socket}: ${(err as Error).message}`, hint }, stat: null };
  }
  if (!st.isSocket()) {
    return {
      result: {
        name: 'socket',
        ok: false,
        detail: `${socket} is ${typeOf(st)}, not a socket`,
        hint: 'pass the helper socket with --socket (a PR helper socket is created by pr-helper -k PATH or by pr-helper.socket)',
      },
      stat: null,
    };
  }
  return { result: { name: 'socket', ok: true, detail: `${socket} is a socket`, hint: null }, stat: st };
}

function currentCredentials(): Credentials {
  return { uid: process.getuid!(), gid: process.getgid!(), groups: process.getgroups!() };
}

function checkPermission(socket: string, st: Stats): CheckResult {
  const users = idNames('/etc/passwd');
  const groups = idNames('/etc/group');
  const who = currentCredentials();
  const owner = `${users.get(st.uid) ?? st.uid}:${groups.get(st.gid) ?? st.gid}`;
  const me = `uid ${who.uid}${users.has(who.uid) ? ` (${users.get(who.uid)})` : ''}`;
  const inode = { uid: st.uid, gid: st.gid, mode: st.mode };
  const data = { owner: st.uid, group: st.gid, mode: octal(st.mode), uid: who.uid };
  try {
    // access(2) is the kernel's own verdict, ACLs and security modules included.
    accessSync(socket, fsConstants.W_OK);
  } catch {
    return {
      name: 'permissions',
      ok: false,
      detail: `owner ${owner}, mode ${octal(st.mode)}; ${me} cannot connect (no write permission)`,
      hint: permissionHint(inode, who, String(groups.get(st.gid) ?? st.gid)),
      data,
    };
  }
  const { via } = socketWriteAccess(inode, who);
  return { name: 'permissions', ok: true, detail: `owner ${owner}, mode ${octal(st.mode)}; ${me} may connect (${via})`, hint: null, data };
}

type ReadEnd = 'complete' | 'eof' | 'timeout';

/** Reads up to `length` bytes, giving up (and closing the stream) after `ms`. */
async function readWithin(stream: FdStream, length: number, ms: number): Promise<{ bytes: Buffer; end: ReadEnd }> {
  const chunks: Buffer[] = [];
  let got = 0;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    stream.close();
  }, ms);
  try {
    while (got < length) {
      const chunk = await stream.read(length - got);
      if (!chunk) break;
      chunk.fds.forEach((fd) => closeSync(fd));
      chunks.push(Buffer.from(chunk.data));
      got += chunk.data.length;
    }
  } finally {
    clearTimeout(timer);
  }
  return { bytes: Buffer.concat(chunks), end: got >= length ? 'complete' : timedOut ? 'timeout' : 'eof' };
}

const NOT_A_HELPER_HINT = "this socket belongs to another service: point --socket (and QEMU's pr-manager-helper path=) at pr-helper's socket";
const spaced = (b: Buffer): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');

async function checkHandshake(socket: string, timeoutMs: number): Promise<CheckResult> {
  const name = 'handshake';
  let fd: number;
  try {
    fd = native.connectUnix(socket);
  } catch (err) {
    return { name, ok: false, detail: `connect failed: ${(err as Error).message}`, hint: connectFailureHint(err, socket) };
  }
  const stream = new FdStream(fd);
  try {
    const greeting = await readWithin(stream, HANDSHAKE_SIZE, timeoutMs);
    if (greeting.end === 'timeout') {
      return {
        name,
        ok: false,
        detail: `another program answers but is not a PR helper: it sent no handshake within ${timeoutMs} ms (a PR helper sends 4 bytes at once)`,
        hint: NOT_A_HELPER_HINT,
      };
    }
    if (greeting.end === 'eof' && greeting.bytes.length === 0) {
      return {
        name,
        ok: false,
        detail: 'the connection was closed before the handshake',
        hint:
          'pr-helper closes connections from peers outside --allow-uid/--allow-gid and beyond --max-connections ' +
          "(see the helper's log); otherwise another program that is not a PR helper answers",
      };
    }
    if (greeting.end === 'eof' || !greeting.bytes.equals(Buffer.alloc(HANDSHAKE_SIZE))) {
      return {
        name,
        ok: false,
        detail: `another program answers but is not a PR helper: it sent ${spaced(greeting.bytes)}, a PR helper sends 00 00 00 00`,
        hint: NOT_A_HELPER_HINT,
      };
    }
    await stream.write(Buffer.alloc(HANDSHAKE_SIZE));
    const after = await readWithin(stream, 1, POST_HANDSHAKE_QUIET_MS);
    if (after.end !== 'timeout') {
      return {
        name,
        ok: false,
        detail: `another program answers but is not a PR helper: after the handshake it ${after.end === 'eof' ? 'closed the connection' : 'kept talking'}`,
        hint: NOT_A_HELPER_HINT,
      };
    }
    return { name, ok: true, detail: 'a PR helper answers (features 0x00000000)', hint: null };
  } catch (err) {
    return { name, ok: false, detail: `handshake failed: ${(err as Error).message}`, hint: "see the helper's log" };
  } finally {
    stream.close();
  }
}

function checkDevice(device: string): { result: CheckResult; fd: number | null } {
  try {
    // Read-only: READ KEYS is all the check sends, and it must not disturb a device in use.
    const fd = openSync(device, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    return { result: { name: 'device', ok: true, detail: `${device} opens read-only`, hint: null }, fd };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const hint =
      code === 'EACCES' || code === 'EPERM'
        ? `QEMU opens the device itself: run the check as QEMU's user (or root) to test what QEMU would send`
        : code === 'ENOENT'
          ? 'check the path (e.g. /dev/disk/by-id/...)'
          : 'check the device';
    return { result: { name: 'device', ok: false, detail: `cannot open ${device}: ${(err as Error).message}`, hint }, fd: null };
  }
}

function replyHint(asc: number | undefined, ascq: number | undefined, key: number | undefined, status: number): string {
  if (status === 0x18) return 'a legacy SPC-2 RESERVE is held on the device (PR IN conflicts only with that); release it';
  if (key === 0x06) return 'a unit attention was pending and has been reported; run the check again';
  if (asc === 0x25 && ascq === 0x00) return "the device is not a logical unit of the helper's --simulate configuration (or the LUN is gone)";
  if (asc === 0x20 && ascq === 0x00) return 'the device does not support persistent reservations';
  if (key === 0x0b) return "the helper could not issue SG_IO on the device: is it a SCSI disk (sd, sg, dm-multipath)? See the helper's log";
  return "see the helper's log";
}

async function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new Error(`no answer within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function checkReadKeys(socket: string, fd: number, timeoutMs: number): Promise<CheckResult> {
  const name = 'read-keys';
  const connection: { client: HelperClient | null } = { client: null };
  try {
    const reply = await withTimeout(
      (async () => {
        const client = await HelperClient.connect(socket);
        connection.client = client;
        return client.execute(encodePrInCdb({ action: PrInAction.READ_KEYS, allocationLength: MAX_TRANSFER }, CDB_SIZE), fd);
      })(),
      timeoutMs,
      () => connection.client?.close(),
    );
    const failure = describeReply(reply.status, reply.sense);
    if (failure) {
      return {
        name,
        ok: false,
        detail: `READ KEYS: ${failure.message}`,
        hint: replyHint(failure.sense?.asc, failure.sense?.ascq, failure.sense?.key, failure.status),
        data: { status: failure.statusName, sense: failure.sense },
      };
    }
    const keys = decodeReadKeys(reply.data);
    const list = keys.keys.map((k) => `0x${k.toString(16)}`);
    return {
      name,
      ok: true,
      detail: `PR generation=0x${keys.generation.toString(16)}, ${list.length} registered reservation key${list.length === 1 ? '' : 's'}${list.length ? `: ${list.join(', ')}` : ''}`,
      hint: null,
      data: { generation: keys.generation, keys: list },
    };
  } catch (err) {
    const hint = err instanceof PrDataError ? 'the device returned malformed READ KEYS data' : "the helper broke off the command: see the helper's log";
    return { name, ok: false, detail: `READ KEYS failed: ${(err as Error).message}`, hint };
  } finally {
    connection.client?.close();
  }
}

/** The checks in order, stopping after the first failure, since later ones depend on it. */
async function runChecks(options: { socket: string; device?: string; timeoutMs: number }): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const socket = checkSocket(options.socket);
  results.push(socket.result);
  if (!socket.stat) return results;
  const permission = checkPermission(options.socket, socket.stat);
  results.push(permission);
  if (!permission.ok) return results;
  const handshake = await checkHandshake(options.socket, options.timeoutMs);
  results.push(handshake);
  if (!handshake.ok || options.device === undefined) return results;
  const device = checkDevice(options.device);
  results.push(device.result);
  if (device.fd === null) return results;
  try {
    results.push(await checkReadKeys(options.socket, device.fd, options.timeoutMs));
  } finally {
    closeSync(device.fd);
  }
  return results;
}

function formatResults(results: readonly CheckResult[]): string {
  return results
    .map((r) => `${r.ok ? 'ok  ' : 'FAIL'}  ${r.name}: ${r.detail}${r.hint ? `. Hint: ${r.hint}` : ''}\n`)
    .join('');
}

function parseTimeout(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 600_000) {
    throw new InvalidArgumentError('expected milliseconds from 1 to 600000.');
  }
  return Number(value);
}

function buildProgram(): Command {
  return new Command(COMMAND)
    .description('Check that a client can reach the PR helper: socket, permission, handshake and, with --device, one READ KEYS.')
    .usage('[--socket S] [--device PATH] [--timeout MS] [--json]')
    .helpOption('-h, --help', 'display this help and exit')
    .option('-k, --socket <path>', 'the helper socket', DEFAULT_SOCKET)
    .option('-d, --device <path>', 'also open this device read-only and send READ KEYS through the helper')
    .option('--timeout <ms>', 'how long to wait for the helper at each step', parseTimeout, DEFAULT_TIMEOUT_MS)
    .option('--json', 'print the results as JSON')
    .addHelpText('after', '\nExit status: 0 when every check passes, 1 otherwise (or on a usage error).\n')
    .allowExcessArguments(false)
    .exitOverride();
}

/** `pr-helper check ARGS`: returns the exit status. */
export async function runCheckCommand(argv: readonly string[], io: Output = processOutput): Promise<number> {
  const program = buildProgram();
  const exit = parseSubcommandArgs(program, argv, io);
  if (exit !== null) return exit;
  const o = program.opts<{ socket: string; device?: string; timeout: number; json?: boolean }>();
  const results = await runChecks({ socket: o.socket, device: o.device, timeoutMs: o.timeout });
  const ok = results.every((r) => r.ok);
  io.out(o.json ? JSON.stringify({ ok, checks: results }, null, 2) + '\n' : formatResults(results));
  return ok ? 0 : 1;
}
