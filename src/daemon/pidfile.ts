import { closeSync, constants, fchmodSync, fstatSync, ftruncateSync, openSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { foreignWriter } from '../io/trusted-directory.js';
import * as native from '../native/binding.js';

export interface Pidfile {
  readonly path: string;
  readonly fd: number;
}

/** A racing instance can unlink and recreate the file between our open and our lock this often before we give up. */
const ATTEMPTS = 10;

/**
 * Writes `<pid>\n` with mode 0600 and keeps the file open and locked for the
 * daemon's lifetime, like the original; a second instance fails here. Unlike
 * the original, the file is removed on exit (removePidfile), a symlink or
 * anything but a regular file of ours at the path is refused (the original
 * truncates a symlink's target), and so is a directory others could write.
 * After locking, the path must still name the locked inode, else another
 * instance replaced it meanwhile and we start over: qemu_write_pidfile's loop
 * (util/oslib-posix.c).
 */
export function createPidfile(path: string, pid = process.pid): Pidfile {
  const writer = foreignWriter(dirname(path));
  if (writer !== null) throw new Error(`Refusing pid file ${path}: ${writer}, so the file could be replaced`);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const fd = openPidfile(path);
    try {
      native.lockFile(fd);
    } catch (err) {
      closeSync(fd);
      const held = native.isSystemError(err, 'EAGAIN') || native.isSystemError(err, 'EACCES');
      throw new Error(held ? `Cannot lock pid file ${path}: another instance holds it` : `Cannot lock pid file ${path}: ${(err as Error).message}`);
    }
    const locked = fstatSync(fd);
    let named: { dev: number; ino: number } | null;
    try {
      named = statSync(path);
    } catch {
      named = null;
    }
    if (named === null || named.dev !== locked.dev || named.ino !== locked.ino) {
      closeSync(fd);
      continue;
    }
    fchmodSync(fd, 0o600);
    ftruncateSync(fd, 0);
    writeSync(fd, `${pid}\n`, 0);
    return { path, fd };
  }
  throw new Error(`Cannot lock pid file ${path}: it keeps being replaced`);
}

function openPidfile(path: string): number {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted at the path must not hang the start.
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ENXIO: a FIFO nobody reads (open(2) with O_NONBLOCK).
    const why = code === 'ELOOP' ? 'it is a symbolic link' : code === 'ENXIO' ? 'it is not a regular file' : (err as Error).message;
    throw new Error(`Could not create '${path}': ${why}`);
  }
  const st = fstatSync(fd);
  if (!st.isFile() || st.uid !== process.geteuid!()) {
    closeSync(fd);
    throw new Error(`Could not create '${path}': ${st.isFile() ? `it belongs to uid ${st.uid}` : 'it is not a regular file'}`);
  }
  return fd;
}

/**
 * Removes the file while still holding the lock: an instance that opened it
 * before the unlink then locks an inode the path no longer names, which its
 * re-check in createPidfile detects.
 */
export function removePidfile(pidfile: Pidfile): string | null {
  try {
    unlinkSync(pidfile.path);
  } catch (err) {
    return (err as Error).message;
  } finally {
    closeSync(pidfile.fd);
  }
  return null;
}
