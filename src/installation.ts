/**
 * Where this copy of pr-helper lives and how it was installed, so that files
 * of the package are found at its root only and a broken install names its
 * own repair.
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { foreignWriter } from './io/trusted-directory.js';
import { fileURLToPath } from 'node:url';

/** Where the Debian package (npm run package:deb) installs the package root. */
export const DEBIAN_PACKAGE_ROOT = '/usr/lib/pr-helper';

/**
 * The package root: the directory holding package.json and build/. This file
 * is src/installation.ts in a checkout (vitest) and dist/src/installation.js
 * once compiled, so the depth is known and nothing above the root is searched:
 * a file planted in a parent directory must never be loaded as root.
 */
export const PACKAGE_ROOT = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '..' : '../..', import.meta.url)).replace(/\/$/, '');

export type InstallKind = 'debian' | 'npm-global' | 'npm-dependency' | 'checkout';

export function installKind(root: string): InstallKind {
  if (root === DEBIAN_PACKAGE_ROOT) return 'debian';
  if (basename(dirname(root)) !== 'node_modules') return 'checkout';
  // npm puts global packages in <prefix>/lib/node_modules, a project's in <project>/node_modules.
  return basename(dirname(dirname(root))) === 'lib' ? 'npm-global' : 'npm-dependency';
}

/** What rebuilds or restores the compiled files of an install of this kind. */
export function repairAdvice(kind: InstallKind, root: string): string {
  switch (kind) {
    case 'debian':
      return 'reinstall the package: apt-get install --reinstall pr-helper';
    case 'npm-global':
      return 'rebuild it: npm rebuild -g pr-helper';
    case 'npm-dependency':
      return `rebuild it: npm rebuild pr-helper (in ${dirname(dirname(root))})`;
    case 'checkout':
      return `build it: npm install (or npm rebuild) in ${root}`;
  }
}

/** The installation is incomplete or damaged; the message is one line that ends with the repair. */
export class InstallationError extends Error {}

/** What runs as code: the compiled sources, the addon, the dependencies (and the manifest naming them). */
const CODE_PATHS = ['package.json', 'dist/src', 'build/Release', 'node_modules'];

/**
 * Why running the package at `root` as root would run code someone else
 * could have changed, or null: every file and directory it loads code from
 * must belong to root and be writable by nobody else, and so must the
 * directories above the root (an npm install with a careless umask, or a
 * `chmod -R a+w`, would otherwise let any local user run code with the
 * daemon's CAP_SYS_RAWIO).
 */
export function untrustedCode(root: string): string | null {
  const above = foreignWriter(root);
  if (above !== null) return above;
  const seen = new Set<string>();
  const check = (path: string): string | null => {
    let st;
    try {
      st = statSync(path);
    } catch {
      return null;
    }
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) return null;
    seen.add(id);
    if (st.uid !== 0) return `${path} belongs to uid ${st.uid}`;
    if ((st.mode & 0o022) !== 0) return `${path} is writable by others (mode 0${(st.mode & 0o7777).toString(8)})`;
    if (!st.isDirectory()) return null;
    for (const name of readdirSync(path)) {
      const found = check(join(path, name));
      if (found !== null) return found;
    }
    return null;
  };
  for (const part of CODE_PATHS) {
    const found = check(join(root, part));
    if (found !== null) return found;
  }
  return null;
}
