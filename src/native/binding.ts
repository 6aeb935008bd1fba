/**
 * The only importer of the native addon (native/pr_native.c). Everything else
 * uses these typed wrappers. Native failures are `SystemError`s carrying the
 * errno name in `code` and the syscall in `syscall`.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { installKind, InstallationError, PACKAGE_ROOT, repairAdvice } from '../installation.js';

export interface SystemError extends Error {
  code: string;
  syscall: string;
  errno: number;
}

export function isSystemError(err: unknown, code?: string): err is SystemError {
  return err instanceof Error && typeof (err as SystemError).syscall === 'string' &&
    (code === undefined || (err as SystemError).code === code);
}

export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

export interface AcceptedConnection extends PeerCredentials {
  readonly fd: number;
}

export interface ReceivedMessage {
  /** 0 means end of stream. */
  readonly bytes: number;
  /** Every descriptor that arrived with these bytes; the caller owns (and must close) them. */
  readonly fds: number[];
  /** The kernel dropped descriptors that did not fit the control buffer. */
  readonly truncated: boolean;
}

export interface FileStatus {
  readonly mode: number;
  readonly dev: number;
  readonly ino: number;
  readonly rdev: number;
  readonly uid: number;
  readonly gid: number;
}

/** Values of sg_io_hdr.dxfer_direction. */
export const SgDirection = { NONE: -1, TO_DEV: -2, FROM_DEV: -3 } as const;

export interface SgioResult {
  /** 0 when the ioctl itself succeeded, else its errno. */
  readonly errno: number;
  readonly status: number;
  readonly maskedStatus: number;
  readonly hostStatus: number;
  readonly driverStatus: number;
  readonly resid: number;
  readonly senseLength: number;
  /** Always 96 bytes: the buffer is zeroed before the ioctl. */
  readonly sense: Buffer;
  /** FROM_DEV only: the whole data buffer as the device left it. */
  readonly data?: Buffer;
  readonly durationNs: number;
}

export const PollEvent = { READABLE: 1, WRITABLE: 2 } as const;

/** Opaque handle of an active readiness watch; it stays alive until pollClose(). */
export interface PollHandle {
  readonly __pollHandle: unique symbol;
}

export interface Capabilities {
  readonly effective: bigint;
  readonly permitted: bigint;
  readonly inheritable: bigint;
}

interface NativeAddon {
  /** gid -1 keeps the creator's group. */
  listenUnix(path: string, backlog: number, mode: number, gid: number): number;
  connectUnix(path: string): number;
  socketPair(): [number, number];
  accept(fd: number): AcceptedConnection | null;
  /** Bytes received (null on EAGAIN); descriptor count, truncation flag and descriptors go to `meta`. */
  recvmsg(fd: number, buffer: Buffer, offset: number, length: number, meta: Int32Array): number | null;
  sendmsg(fd: number, buffer: Buffer, offset: number, length: number, fds?: readonly number[]): number | null;
  close(fd: number): void;
  shutdown(fd: number, how: number): void;
  /** Fills `out` with mode, dev, ino, rdev, uid, gid. */
  fstat(fd: number, out: Float64Array): void;
  fcntl(fd: number, cmd: number, arg?: number): number;
  isListeningSocket(fd: number): boolean;
  lockFile(fd: number): void;
  poll(fd: number, events: number, callback: (status: number, events: number) => void): PollHandle;
  pollUpdate(handle: PollHandle, events: number): void;
  pollClose(handle: PollHandle): void;
  /** Resolves with one block: 8 doubles (see toSgioResult), 96 sense bytes, then data-in for FROM_DEV. */
  sgio(fd: number, cdb: Buffer, direction: number, data: Buffer | number, timeoutMs: number): Promise<Buffer>;
  sdNotify(socketPath: string, message: string): void;
  prctl(option: number, arg2?: number, arg3?: number): number;
  capGet(): Capabilities;
  capSet(effective: bigint, permitted: bigint, inheritable: bigint): void;
  execve(path: string, argv: readonly string[], env: readonly string[]): never;
}

const ADDON_PATH = join(PACKAGE_ROOT, 'build', 'Release', 'pr_native.node');

function loadAddon(): NativeAddon {
  const repair = repairAdvice(installKind(PACKAGE_ROOT), PACKAGE_ROOT);
  if (!existsSync(ADDON_PATH)) throw new InstallationError(`native addon ${ADDON_PATH} not found; ${repair}`);
  try {
    return createRequire(import.meta.url)(ADDON_PATH) as NativeAddon;
  } catch (err) {
    // dlopen's reason (wrong architecture, missing symbol) is its first line, after the path.
    const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0]!.replace(`${ADDON_PATH}: `, '');
    throw new InstallationError(`native addon ${ADDON_PATH} cannot be loaded (${reason}); ${repair}`);
  }
}

const addon = loadAddon();

export const listenUnix = addon.listenUnix;
export const connectUnix = addon.connectUnix;
export const socketPair = addon.socketPair;
export const accept = addon.accept;

// The addon writes small results into these arrays instead of building
// objects from C, which costs more than the system calls themselves; the
// objects are built here, in JavaScript. Calls are synchronous, so one
// array each is enough.
const recvMeta = new Int32Array(2 + 253);
const statOut = new Float64Array(6);

/** Non-blocking recvmsg: null on EAGAIN, bytes 0 at end of stream. */
export function recvmsg(fd: number, buffer: Buffer, offset: number, length: number): ReceivedMessage | null {
  const bytes = addon.recvmsg(fd, buffer, offset, length, recvMeta);
  if (bytes === null) return null;
  const count = recvMeta[0]!;
  const fds: number[] = [];
  for (let i = 0; i < count; i++) fds.push(recvMeta[2 + i]!);
  return { bytes, fds, truncated: recvMeta[1] !== 0 };
}

export function fstat(fd: number): FileStatus {
  addon.fstat(fd, statOut);
  return { mode: statOut[0]!, dev: statOut[1]!, ino: statOut[2]!, rdev: statOut[3]!, uid: statOut[4]!, gid: statOut[5]! };
}
export const sendmsg = addon.sendmsg;
export const close = addon.close;
export const SHUT_WR = 1;
export const shutdown = addon.shutdown;
export const isListeningSocket = addon.isListeningSocket;
export const lockFile = addon.lockFile;
export const poll = addon.poll;
export const pollUpdate = addon.pollUpdate;
export const pollClose = addon.pollClose;

const SGIO_SENSE_OFFSET = 8 * 8;
const SGIO_DATA_OFFSET = SGIO_SENSE_OFFSET + 96;

/** The addon's result block as an SgioResult; sense and data are views of the block. */
function toSgioResult(block: Buffer, direction: number): SgioResult {
  const errno = block.readDoubleLE(0);
  const status = block.readDoubleLE(8);
  const maskedStatus = block.readDoubleLE(16);
  const hostStatus = block.readDoubleLE(24);
  const driverStatus = block.readDoubleLE(32);
  const resid = block.readDoubleLE(40);
  const senseLength = block.readDoubleLE(48);
  const durationNs = block.readDoubleLE(56);
  const sense = block.subarray(SGIO_SENSE_OFFSET, SGIO_DATA_OFFSET);
  // `data` stays absent (not undefined) for directions without a data-in buffer.
  return direction === SgDirection.FROM_DEV
    ? { errno, status, maskedStatus, hostStatus, driverStatus, resid, senseLength, durationNs, sense, data: block.subarray(SGIO_DATA_OFFSET) }
    : { errno, status, maskedStatus, hostStatus, driverStatus, resid, senseLength, durationNs, sense };
}

/**
 * ioctl(SG_IO) on a thread of its own (never queued behind another command),
 * resolving when the device answered. Throws TypeError for bad arguments.
 */
export function sgio(fd: number, cdb: Buffer, direction: number, data: Buffer | number, timeoutMs: number): Promise<SgioResult> {
  return addon.sgio(fd, cdb, direction, data, timeoutMs).then((block) => toSgioResult(block, direction));
}
export const sdNotify = addon.sdNotify;
export const capGet = addon.capGet;
export const capSet = addon.capSet;
export const execve = addon.execve;

const F_GETFD = 1;
const F_SETFD = 2;
const F_GETFL = 3;
const F_SETFL = 4;
const FD_CLOEXEC = 1;
export const O_ACCMODE = 3;
export const O_RDONLY = 0;
export const O_NONBLOCK = 0o4000;
/** O_PATH descriptors report this access-mode-less flag in F_GETFL. */
export const O_PATH = 0o10000000;

export function getStatusFlags(fd: number): number {
  return addon.fcntl(fd, F_GETFL);
}

export function setStatusFlags(fd: number, flags: number): void {
  addon.fcntl(fd, F_SETFL, flags);
}

export function setCloseOnExec(fd: number, on: boolean): void {
  const flags = addon.fcntl(fd, F_GETFD);
  addon.fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC);
}

const PR_SET_KEEPCAPS = 8;
const PR_CAPBSET_DROP = 24;
const PR_CAP_AMBIENT = 47;
const PR_CAP_AMBIENT_RAISE = 2;
const PR_CAP_AMBIENT_CLEAR_ALL = 4;

export function setKeepCapabilities(on: boolean): void {
  addon.prctl(PR_SET_KEEPCAPS, on ? 1 : 0);
}

export function dropFromBoundingSet(capability: number): void {
  addon.prctl(PR_CAPBSET_DROP, capability);
}

export function raiseAmbient(capability: number): void {
  addon.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, capability);
}

export function clearAmbient(): void {
  addon.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL);
}
