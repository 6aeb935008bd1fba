import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The pr-helper package root, found by walking up from this file: it runs
 * from test/ (vitest) and from dist/test/ (npm run fuzz, the e2e checkers).
 */
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'pr-helper') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the pr-helper package root');
    dir = parent;
  }
}

export const REPO_ROOT = findRepoRoot();
