/**
 * The install for hosts without the Debian package: `npm pack`, then
 * `npm install -g` of the tarball (into a scratch prefix), which compiles the
 * addon on the host. --prefer-offline: `npm ci` has cached the dependencies'
 * tarballs but not their registry metadata, which a fresh machine fetches.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireTool, startProcess } from '../helpers/daemon.js';
import { REPO_ROOT } from '../helpers/repo-root.js';

const canRun = requireTool('/usr/bin/make', 'make') && requireTool('/usr/bin/g++', 'g++') && requireTool('/usr/bin/python3', 'python3');

function run(command: string, args: string[], cwd = REPO_ROOT) {
  const r = spawnSync(command, args, { encoding: 'utf8', cwd, timeout: 180_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.runIf(canRun)('npm install -g of the npm pack tarball', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'prh-npm-'));
  const prefix = join(scratch, 'prefix');
  const bin = join(prefix, 'bin/pr-helper');
  const installed = join(prefix, 'lib/node_modules/pr-helper');
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  beforeAll(() => {
    // npm test has compiled dist/ already: no prepare script (tsc) for the tarball.
    const pack = run('npm', ['pack', '--ignore-scripts', '--pack-destination', scratch]);
    expect(pack.code, pack.stderr).toBe(0);
    const tarball = readdirSync(scratch).find((f) => f.endsWith('.tgz'));
    expect(tarball).toBeDefined();
    const install = run('npm', ['install', '-g', '--prefer-offline', '--no-audit', '--no-fund', '--prefix', prefix, join(scratch, tarball!)], scratch);
    expect(install.code, install.stderr).toBe(0);
  }, 240_000);

  it('links the command and the man page, and builds the addon', () => {
    expect(lstatSync(bin).isSymbolicLink()).toBe(true);
    expect(existsSync(join(prefix, 'share/man/man8/pr-helper.8'))).toBe(true);
    expect(existsSync(join(installed, 'build/Release/pr_native.node'))).toBe(true);
    const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    expect(run(bin, ['-V'])).toEqual({ code: 0, stdout: `pr-helper ${version}\n`, stderr: '' });
  });

  it('serves a simulated disk that pr-helper check accepts', async () => {
    const socket = join(scratch, 's.sock');
    const daemon = await startProcess(bin, ['--simulate', '-k', socket], socket);
    try {
      expect(readFileSync(`/proc/${daemon.proc.pid}/comm`, 'utf8')).toBe('pr-helper\n');
      const check = run(bin, ['check', '--socket', socket]);
      expect(check.stdout).toMatch(/^ok +handshake: a PR helper answers/m);
      expect(check.code).toBe(0);
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });

  it('without its addon it says to run npm rebuild -g pr-helper', () => {
    renameSync(join(installed, 'build'), join(scratch, 'build'));
    const r = run(bin, ['-k', join(scratch, 's.sock')]);
    expect(r).toEqual({
      code: 1,
      stdout: '',
      stderr: `pr-helper: native addon ${join(installed, 'build/Release/pr_native.node')} not found; rebuild it: npm rebuild -g pr-helper\n`,
    });
  });
});
