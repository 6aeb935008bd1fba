import { closeSync, lstatSync, unlinkSync } from 'node:fs';
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
  removeStaleSocket(path);
  try {
    return native.listenUnix(path, options.backlog, options.mode, options.gid ?? -1);
  } catch (err) {
    const what = (err as native.SystemError).syscall === 'chown' ? `give ${path} to group ${options.gid}` : `listen on ${path}`;
    throw new ListenError(`cannot ${what}: ${(err as Error).message}`);
  }
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
