import { realpathSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Why a name created in `dir` could be swapped by someone other than root or
 * us, or null if it cannot: every directory from `dir` up to / must belong to
 * one of the two and be writable by nobody else, unless sticky (then others
 * cannot rename or delete our entries: restricted deletion flag, inode(7)).
 * The rule OpenSSH's StrictModes applies to the directories above key files.
 */
export function foreignWriter(dir: string): string | null {
  let at: string;
  try {
    at = realpathSync(dir);
  } catch (err) {
    return (err as Error).message;
  }
  const euid = process.geteuid!();
  for (;;) {
    const st = statSync(at);
    if (st.uid !== 0 && st.uid !== euid) return `${at} belongs to uid ${st.uid}`;
    if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
      return `${at} is writable by others (mode 0${(st.mode & 0o7777).toString(8)})`;
    }
    if (at === '/') return null;
    at = dirname(at);
  }
}
