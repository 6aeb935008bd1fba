/**
 * APTPL persistence of the simulated logical units' PR state (schema in
 * persisted-state.ts): one JSON file per LUN, replaced atomically so a crash
 * leaves either the old or the new state, never a torn file.
 */
import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { link, mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { parsePersistedLunState, type PersistedLunState } from './persisted-state.js';

/** The part of a pino-style logger the store needs. */
export interface WarnLog {
  warn(obj: object, msg: string): void;
}

const STATE_SUFFIX = '.pr-state.json';
/** Far more than a LUN with every registration SPC-4 allows needs; a larger file is not ours. */
const MAX_STATE_BYTES = 4 << 20;

/** Why a state file is refused before it is parsed; its message holds nothing from the file. */
class StateFileRefused extends Error {}
const TEMP_INFIX = '.tmp-';

/**
 * Maps a LUN name to a file name that cannot leave the state directory or
 * collide with another LUN's: anything but [A-Za-z0-9_-] (and '.' after the
 * first character) is percent-encoded, so the mapping is injective.
 */
export function stateFileName(lunName: string): string {
  if (lunName.length === 0) throw new Error('LUN name must not be empty');
  let encoded = '';
  for (const [i, ch] of [...lunName].entries()) {
    if (/[A-Za-z0-9_-]/.test(ch) || (ch === '.' && i > 0)) {
      encoded += ch;
    } else {
      for (const byte of Buffer.from(ch, 'utf8')) encoded += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    }
  }
  return `${encoded}${STATE_SUFFIX}`;
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

/** Makes a rename or unlink in `dir` durable. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Moves a bad state file to `<file>.corrupt-<n>` with the first free n.
 * link() fails instead of replacing an existing target, so earlier copies
 * are never overwritten.
 */
async function keepAside(file: string): Promise<string> {
  for (let n = 1; ; n++) {
    const aside = `${file}.corrupt-${n}`;
    try {
      await link(file, aside);
    } catch (err) {
      if (isErrno(err, 'EEXIST')) continue;
      throw err;
    }
    await unlink(file);
    return aside;
  }
}

/**
 * Removes temporary files a crash during saveLunState left behind. Best
 * effort: if the directory cannot be listed, reading the state reports why.
 */
async function removeStaleTemporaries(dir: string, fileName: string): Promise<void> {
  const names = await readdir(dir).catch((): string[] => []);
  const prefix = `${fileName}${TEMP_INFIX}`;
  for (const name of names) {
    if (name.startsWith(prefix)) await unlink(join(dir, name)).catch(() => undefined);
  }
}

/**
 * Reads a LUN's persisted PR state. A missing file (or directory) yields null
 * silently; an unreadable, unparsable or invalid one yields null after a
 * warning, and is kept aside so the next save does not destroy the evidence.
 * Call it before any save for the LUN: it also removes a crashed save's
 * temporary files.
 */
export async function loadLunState(dir: string, lunName: string, log: WarnLog): Promise<PersistedLunState | null> {
  const fileName = stateFileName(lunName);
  const file = join(dir, fileName);
  await removeStaleTemporaries(dir, fileName);
  try {
    return parsePersistedLunState(JSON.parse(await readStateFile(file)));
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return null;
    // JSON.parse's message quotes the file: never log what it holds.
    const reason = err instanceof SyntaxError ? new SyntaxError('the file is not valid JSON') : err;
    try {
      const keptAs = await keepAside(file);
      log.warn({ file, err: reason, keptAs }, 'PR state file is unusable; kept aside, starting without persisted reservations');
    } catch (asideErr) {
      log.warn({ file, err: reason, asideErr }, 'PR state file is unusable and could not be kept aside; starting without persisted reservations');
    }
    return null;
  }
}

/**
 * The file's text, if it is a regular file of ours of sane size. Opened
 * without following a symlink and without blocking on a FIFO someone
 * planted in the directory.
 */
async function readStateFile(file: string): Promise<string> {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if (isErrno(err, 'ELOOP')) throw new StateFileRefused('it is a symbolic link');
    throw err;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new StateFileRefused('it is not a regular file');
    if (st.uid !== process.geteuid!()) throw new StateFileRefused(`it belongs to uid ${st.uid}`);
    if (st.size > MAX_STATE_BYTES) throw new StateFileRefused(`it is larger than ${MAX_STATE_BYTES} bytes`);
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/**
 * Writes a LUN's PR state: temporary file in the same directory, fsync,
 * rename over the old file, fsync the directory. On failure the previous file
 * is untouched and the temporary file removed.
 */
export async function saveLunState(dir: string, lunName: string, snapshot: PersistedLunState): Promise<void> {
  const file = join(dir, stateFileName(lunName));
  const text = `${JSON.stringify(snapshot, null, 2)}\n`;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = `${file}${TEMP_INFIX}${randomUUID()}`;
  try {
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await syncDirectory(dir);
}

/** Removes a LUN's PR state (APTPL turned off); a missing file is not an error. */
export async function deleteLunState(dir: string, lunName: string): Promise<void> {
  try {
    await unlink(join(dir, stateFileName(lunName)));
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return;
    throw err;
  }
  await syncDirectory(dir);
}
