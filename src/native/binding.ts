/**
 * The only importer of the native addon (native/, one addon). Everything else
 * uses these typed wrappers. Native failures are `SystemError`s carrying the
 * errno name in `code` and the syscall in `syscall`. What Node's fs already
 * does on a bare descriptor (closeSync, fstatSync) is not repeated here.
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
  /** Always the addon's whole sense buffer (96 bytes), zeroed before the ioctl. */
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

/**
 * Byte offsets into the block sgio() resolves with, per SgioResult field, as
 * the addon lays it out; the sense bytes run from `sense` to `data`.
 */
type SgioResultLayout = Readonly<Record<keyof SgioResult, number>>;

/** Indices into recvmsg()'s `meta` array, and the length it must have. */
interface RecvmsgMetaLayout {
  readonly count: number;
  readonly truncated: number;
  readonly fds: number;
  readonly length: number;
}

interface NativeAddon {
  /** gid -1 keeps the creator's group. */
  listenUnix(path: string, backlog: number, mode: number, gid: number): number;
  connectUnix(path: string): number;
  socketPair(): [number, number];
  accept(fd: number): AcceptedConnection | null;
  /** Bytes received (null on EAGAIN); descriptor count, truncation flag and descriptors go to `meta` (see recvmsgMeta). */
  recvmsg(fd: number, buffer: Buffer, offset: number, length: number, meta: Int32Array): number | null;
  sendmsg(fd: number, buffer: Buffer, offset: number, length: number, fds?: readonly number[]): number | null;
  readonly recvmsgMeta: RecvmsgMetaLayout;
  shutdown(fd: number, how: number): void;
  fcntl(fd: number, cmd: number, arg?: number): number;
  lockFile(fd: number): void;
  openFileLimit(): RawFileLimit;
  setOpenFileSoftLimit(soft: number): RawFileLimit;
  socketOption(fd: number, level: number, name: number): number;
  poll(fd: number, events: number, callback: (status: number, events: number) => void): PollHandle;
  pollUpdate(handle: PollHandle, events: number): void;
  pollClose(handle: PollHandle): void;
  /** Resolves with one block laid out as sgioResult: numbers, sense bytes, then data-in for FROM_DEV. */
  sgio(fd: number, cdb: Buffer, direction: number, data: Buffer | number, timeoutMs: number): Promise<Buffer>;
  readonly sgioResult: SgioResultLayout;
  readonly sgioPool: { readonly idleSeconds: number };
  sdNotify(socketPath: string, message: string): void;
  capGet(): Capabilities;
  applyToAllThreads(plan: ThreadCredentialPlan): number;
}

/** One credential change made by every thread (native/thread-credentials.c). */
export interface ThreadCredentialPlan {
  readonly changeIds: boolean;
  readonly uid: number;
  readonly gid: number;
  /** Permitted and effective set of the calling thread; every other thread ends with none. */
  readonly keep: bigint;
  readonly dropBounding: bigint;
  readonly noNewPrivs: boolean;
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
/** For tests and tools: a connected pair, as a client and the daemon would hold. */
export const socketPair = addon.socketPair;
export const accept = addon.accept;

// The addon writes recvmsg's small results into this array instead of
// building an object from C, which costs more than the system call itself;
// the object is built here, in JavaScript. Calls are synchronous, so one
// array is enough.
const META = addon.recvmsgMeta;
const recvMeta = new Int32Array(META.length);

/** Non-blocking recvmsg: null on EAGAIN, bytes 0 at end of stream. */
export function recvmsg(fd: number, buffer: Buffer, offset: number, length: number): ReceivedMessage | null {
  const bytes = addon.recvmsg(fd, buffer, offset, length, recvMeta);
  if (bytes === null) return null;
  const count = recvMeta[META.count]!;
  const fds: number[] = [];
  for (let i = 0; i < count; i++) fds.push(recvMeta[META.fds + i]!);
  return { bytes, fds, truncated: recvMeta[META.truncated] !== 0 };
}

export const sendmsg = addon.sendmsg;
export const SHUT_WR = 1;
/** For tests and tools: lets a client end its stream while still reading. */
export const shutdown = addon.shutdown;
export const lockFile = addon.lockFile;

/** RLIMIT_NOFILE; `Infinity` for RLIM_INFINITY. */
export interface FileLimit {
  readonly soft: number;
  readonly hard: number;
}

interface RawFileLimit {
  readonly soft: number;
  readonly hard: number;
}

const fileLimit = (raw: RawFileLimit): FileLimit => ({ soft: raw.soft < 0 ? Infinity : raw.soft, hard: raw.hard < 0 ? Infinity : raw.hard });
export const openFileLimit = (): FileLimit => fileLimit(addon.openFileLimit());
/** Sets the soft limit only; lowering it needs no privilege. */
export const setOpenFileSoftLimit = (soft: number): FileLimit => fileLimit(addon.setOpenFileSoftLimit(soft));
export const poll = addon.poll;
export const pollUpdate = addon.pollUpdate;
export const pollClose = addon.pollClose;

/** Seconds an idle SG_IO thread lives before it exits. */
export const SGIO_POOL_IDLE_SECONDS = addon.sgioPool.idleSeconds;

const AT = addon.sgioResult;

/** The addon's result block as an SgioResult; sense and data are views of the block. */
function toSgioResult(block: Buffer, direction: number): SgioResult {
  const errno = block.readDoubleLE(AT.errno);
  const status = block.readDoubleLE(AT.status);
  const maskedStatus = block.readDoubleLE(AT.maskedStatus);
  const hostStatus = block.readDoubleLE(AT.hostStatus);
  const driverStatus = block.readDoubleLE(AT.driverStatus);
  const resid = block.readDoubleLE(AT.resid);
  const senseLength = block.readDoubleLE(AT.senseLength);
  const durationNs = block.readDoubleLE(AT.durationNs);
  const sense = block.subarray(AT.sense, AT.data);
  // `data` stays absent (not undefined) for directions without a data-in buffer.
  return direction === SgDirection.FROM_DEV
    ? { errno, status, maskedStatus, hostStatus, driverStatus, resid, senseLength, durationNs, sense, data: block.subarray(AT.data) }
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
/** Returns how many threads were changed, the calling one included. */
export const applyToAllThreads = addon.applyToAllThreads;

const F_GETFD = 1;
const F_SETFD = 2;
const F_GETFL = 3;
const F_SETFL = 4;
const FD_CLOEXEC = 1;
export const O_ACCMODE = 3;
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_NONBLOCK = 0o4000;
/** O_PATH descriptors report this access-mode-less flag in F_GETFL. */
export const O_PATH = 0o10000000;

const SOL_SOCKET = 1;
const SO_TYPE = 3;
const SO_ACCEPTCONN = 30;
const SO_DOMAIN = 39;
const SOCK_STREAM = 1;
const AF_UNIX = 1;

/** Whether fd is a Unix stream socket in the listening state. */
export function isListeningUnixSocket(fd: number): boolean {
  try {
    return (
      addon.socketOption(fd, SOL_SOCKET, SO_DOMAIN) === AF_UNIX &&
      addon.socketOption(fd, SOL_SOCKET, SO_TYPE) === SOCK_STREAM &&
      addon.socketOption(fd, SOL_SOCKET, SO_ACCEPTCONN) === 1
    );
  } catch {
    return false;
  }
}

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
