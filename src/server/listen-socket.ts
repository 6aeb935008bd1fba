import { closeSync, lstatSync, statSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { foreignWriter } from '../io/trusted-directory.js';
import * as native from '../native/binding.js';

export interface ListenOptions {
  /** Permission bits of the socket inode, applied at creation (no wider window). */
  readonly mode: number;
  /** Group to own the socket, so that exactly that group may connect. */
  readonly gid?: number;
  readonly backlog: number;
}

export class ListenError extends Error {}

/**
 * Creates the listening socket at `path`. Unlike the original, which unlinks
 * whatever is there (QEMU io/channel-socket.c qio_channel_socket_listen_sync
 * via util/qemu-sockets.c unix_listen_saddr, silently stealing a live
 * daemon's path), this refuses to displace a daemon that still
 * answers and refuses to delete anything that is not a socket; a stale socket
 * file is replaced.
 */
export function createListenSocket(path: string, options: ListenOptions): number {
  if (!path.startsWith('/')) throw new ListenError('socket path must be absolute');
  if (Buffer.byteLength(path) > 107) throw new ListenError(`UNIX socket path '${path}' is too long`);
  const gid = bindGroup(path, options.gid);
  removeStaleSocket(path);
  try {
    return native.listenUnix(path, options.backlog, options.mode, gid);
  } catch (err) {
    if (native.isSystemError(err, 'EPERM') && err.syscall === 'setfsgid') {
      throw new ListenError(
        `cannot create ${path} with group ${options.gid}: that needs CAP_SETGID unless it is our own group ` +
          '(run as root, or create the socket in a set-group-ID directory of that group)',
      );
    }
    throw new ListenError(`cannot listen on ${path}: ${(err as Error).message}`);
  }
}

/**
 * The group to create the node with (-1: the kernel's default). In a
 * set-group-ID directory the kernel gives the node the directory's group
 * whatever our file-system gid is, so the request must match it.
 */
function bindGroup(path: string, gid: number | undefined): number {
  const writer = foreignWriter(dirname(path));
  if (writer !== null) throw new ListenError(`refusing to create the socket ${path}: ${writer}, so the socket could be replaced`);
  if (gid === undefined) return -1;
  const dir = statSync(dirname(path));
  if ((dir.mode & 0o2000) === 0) return gid;
  if (dir.gid !== gid) {
    throw new ListenError(`cannot give ${path} group ${gid}: ${dirname(path)} is set-group-ID, so its sockets get group ${dir.gid}`);
  }
  return -1;
}

function removeStaleSocket(path: string): void {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw new ListenError(`${path} exists and is not a socket; refusing to replace it`);
  let probe: number | null = null;
  try {
    probe = native.connectUnix(path);
  } catch (err) {
    if (!native.isSystemError(err, 'ECONNREFUSED')) {
      throw new ListenError(`cannot check existing socket ${path}: ${(err as Error).message}`);
    }
  }
  if (probe !== null) {
    closeSync(probe);
    throw new ListenError(`another daemon is already serving ${path}`);
  }
  unlinkQuietly(path);
}

export function unlinkQuietly(path: string): string | null {
  try {
    unlinkSync(path);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}
