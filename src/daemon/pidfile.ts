import { closeSync, constants, ftruncateSync, openSync, unlinkSync, writeSync } from 'node:fs';
import * as native from '../native/binding.js';

export interface Pidfile {
  readonly path: string;
  readonly fd: number;
}

/**
 * Writes `<pid>\n` with mode 0600 and keeps the file open and locked for the
 * daemon's lifetime, like the original; a second instance fails here. Unlike
 * the original, the file is removed on exit (removePidfile).
 */
export function createPidfile(path: string, pid = process.pid): Pidfile {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT, 0o600);
  } catch (err) {
    throw new Error(`Could not create '${path}': ${(err as Error).message}`);
  }
  try {
    native.lockFile(fd);
  } catch (err) {
    closeSync(fd);
    const held = native.isSystemError(err, 'EAGAIN') || native.isSystemError(err, 'EACCES');
    throw new Error(held ? `Cannot lock pid file ${path}: another instance holds it` : `Cannot lock pid file ${path}: ${(err as Error).message}`);
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `${pid}\n`, 0);
  return { path, fd };
}

/** Removes the file while still holding the lock, so no other instance can slip in between. */
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
