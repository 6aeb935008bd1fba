import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root, found by walking up: this file runs from dist/bench/. */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bench'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('bench: cannot find the package root');
    dir = parent;
  }
}

export const REPO_ROOT = findRoot();
/** The compiled daemon (`npm run bench` compiles first). */
export const DAEMON_ENTRY = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
