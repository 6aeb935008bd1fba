import { chownSync, lstatSync, unlinkSync } from 'node:fs';
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
 * whatever is there (silently stealing a live daemon's path,
 * pr-helper-protocol.md 4.3), this refuses to displace a daemon that still
 * answers and refuses to delete anything that is not a socket; a stale socket
 * file is replaced.
 */
export function createListenSocket(path: string, options: ListenOptions): number {
  if (!path.startsWith('/')) throw new ListenError('socket path must be absolute');
  if (Buffer.byteLength(path) > 107) throw new ListenError(`UNIX socket path '${path}' is too long`);
  removeStaleSocket(path);
  let fd: number;
  try {
    fd = native.listenUnix(path, options.backlog, options.mode);
  } catch (err) {
    throw new ListenError(`cannot listen on ${path}: ${(err as Error).message}`);
  }
  if (options.gid !== undefined) {
    try {
      chownSync(path, -1, options.gid);
    } catch (err) {
      native.close(fd);
      unlinkQuietly(path);
      throw new ListenError(`cannot give ${path} to group ${options.gid}: ${(err as Error).message}`);
    }
  }
  return fd;
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
    native.close(probe);
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
