/**
 * Files of the package are found at its root only, and a broken install says
 * in one line how to repair it, while -V and --help keep working.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { installKind, PACKAGE_ROOT, repairAdvice } from '../src/installation.js';
import { REPO_ROOT } from './helpers/repo-root.js';

const ADDON = 'build/Release/pr_native.node';
const scratch = mkdtempSync(join(tmpdir(), 'prh-install-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A copy of the compiled package without its addon, at <scratch>/parent/pkg. */
function packageWithoutAddon(): string {
  const root = join(scratch, 'parent', 'pkg');
  mkdirSync(join(root, 'dist'), { recursive: true });
  cpSync(join(REPO_ROOT, 'dist/src'), join(root, 'dist/src'), { recursive: true });
  copyFileSync(join(REPO_ROOT, 'package.json'), join(root, 'package.json'));
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'));
  return root;
}

const root = packageWithoutAddon();
const main = join(root, 'dist/src/cli/main.js');
const run = (args: string[]) => {
  const r = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

describe('the package root', () => {
  it('is the checkout when run from source', () => {
    expect(PACKAGE_ROOT).toBe(REPO_ROOT);
  });

  it('tells the install kinds apart by where the root is', () => {
    expect(installKind('/usr/lib/pr-helper')).toBe('debian');
    expect(installKind('/usr/lib/node_modules/pr-helper')).toBe('npm-global');
    expect(installKind('/usr/local/lib/node_modules/pr-helper')).toBe('npm-global');
    expect(installKind('/srv/app/node_modules/pr-helper')).toBe('npm-dependency');
    expect(installKind('/home/me/src/pr-helper')).toBe('checkout');
  });

  it('names the repair of each kind', () => {
    expect(repairAdvice('debian', '/usr/lib/pr-helper')).toContain('apt-get install --reinstall pr-helper');
    expect(repairAdvice('npm-global', '/usr/lib/node_modules/pr-helper')).toContain('npm rebuild -g pr-helper');
    expect(repairAdvice('npm-dependency', '/srv/app/node_modules/pr-helper')).toBe('rebuild it: npm rebuild pr-helper (in /srv/app)');
    expect(repairAdvice('checkout', '/home/me/pr-helper')).toBe('build it: npm install (or npm rebuild) in /home/me/pr-helper');
  });
});

describe('without the native addon', () => {
  // A working addon in a parent directory must not be picked up: as root that would run foreign code.
  mkdirSync(join(scratch, 'parent', 'build', 'Release'), { recursive: true });
  copyFileSync(join(REPO_ROOT, ADDON), join(scratch, 'parent', ADDON));
  const missing = `pr-helper: native addon ${join(root, ADDON)} not found; build it: npm install (or npm rebuild) in ${root}\n`;

  it('-V and --help still work', () => {
    expect(run(['-V'])).toMatchObject({ code: 0, stderr: '' });
    const help = run(['--help']);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toContain('check [options]');
  });

  it('the daemon, client and check stop with one line that names the repair, ignoring the addon in the parent directory', () => {
    const socket = join(scratch, 's.sock');
    expect(run(['--simulate', '-k', socket])).toEqual({ code: 1, stdout: '', stderr: missing });
    expect(run(['check', '--socket', socket])).toEqual({ code: 1, stdout: '', stderr: missing });
    expect(run(['client', '--socket', socket, '--device', '/dev/null', 'read-keys'])).toEqual({ code: 1, stdout: '', stderr: missing });
  });

  it('an addon that does not load gets the dynamic loader reason on the same one line', () => {
    mkdirSync(join(root, 'build', 'Release'), { recursive: true });
    writeFileSync(join(root, ADDON), 'not an ELF object\n'.repeat(16));
    try {
      expect(run(['-k', join(scratch, 's.sock')])).toEqual({
        code: 1,
        stdout: '',
        stderr: `pr-helper: native addon ${join(root, ADDON)} cannot be loaded (invalid ELF header); build it: npm install (or npm rebuild) in ${root}\n`,
      });
    } finally {
      rmSync(join(root, 'build'), { recursive: true });
    }
  });
});

describe.skipIf(process.geteuid?.() !== 0)('as root, a tree others can write', () => {
  it('is refused with one line before any of its code is loaded; a root-only tree runs', () => {
    const tree = join(scratch, 'writable', 'pkg');
    mkdirSync(join(tree, 'dist'), { recursive: true });
    cpSync(join(REPO_ROOT, 'dist/src'), join(tree, 'dist/src'), { recursive: true });
    cpSync(join(REPO_ROOT, 'build/Release/pr_native.node'), join(tree, ADDON), { recursive: true });
    copyFileSync(join(REPO_ROOT, 'package.json'), join(tree, 'package.json'));
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(tree, 'node_modules'));
    const start = () => spawnSync(process.execPath, [join(tree, 'dist/src/cli/main.js'), '-V'], { encoding: 'utf8', timeout: 30_000 });
    expect(start()).toMatchObject({ status: 0, stderr: '' });
    const file = join(tree, 'dist/src/daemon/run.js');
    chmodSync(file, 0o666);
    expect(start()).toMatchObject({ status: 1, stdout: '', stderr: `pr-helper: refusing to run as root: ${file} is writable by others (mode 0666), so others could change the code\n` });
    chmodSync(file, 0o644);
    chmodSync(join(scratch, 'writable'), 0o777);
    expect(start()).toMatchObject({ status: 1, stderr: `pr-helper: refusing to run as root: ${join(scratch, 'writable')} is writable by others (mode 0777), so others could change the code\n` });
  });
});
