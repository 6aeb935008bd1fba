import { fstatSync } from 'node:fs';

/**
 * Whether `fd` is the stream systemd connected to journald: it exports
 * JOURNAL_STREAM=DEV:INO for the stdout/stderr it set up (systemd.exec(5)),
 * and the variable is inherited by children whose stderr goes elsewhere, so
 * the device and inode must match.
 */
export function isJournalStream(env: NodeJS.ProcessEnv, fd: number): boolean {
  const match = /^(\d+):(\d+)$/.exec(env['JOURNAL_STREAM'] ?? '');
  if (!match) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(match[1]!) && st.ino === BigInt(match[2]!);
  } catch {
    return false;
  }
}
