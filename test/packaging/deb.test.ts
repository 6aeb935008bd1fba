/**
 * The Debian package the way an operator gets it: built by `npm run
 * package:deb`, installed with apt-get, the installed command run in each
 * mode, judged by systemd-analyze and lintian, then purged without a trace.
 * It installs into the running system, so it needs root.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderLauncher } from '../../scripts/deb/launcher.js';
import { DEBIAN_PACKAGE_ROOT } from '../../src/installation.js';
import { requireRoot, requireTool, startProcess } from '../helpers/daemon.js';
import { REPO_ROOT } from '../helpers/repo-root.js';

const LAUNCHER = '/usr/bin/pr-helper';
const UNITS = ['/usr/lib/systemd/system/pr-helper.socket', '/usr/lib/systemd/system/pr-helper.service'];
/** deb-systemd-helper's enablement of the socket. */
const SOCKET_ENABLED = '/etc/systemd/system/sockets.target.wants/pr-helper.socket';
/** systemd-analyze verify renders the unit's man: page, and man-db caches it here. */
const MAN_CACHE = '/var/cache/man/cat8/pr-helper.8.gz';
/** Where a package like this one and its maintainer scripts leave files (dpkg's own database changes with every install). */
const WATCHED = ['/etc', '/usr/bin', '/usr/lib', '/usr/share/doc', '/usr/share/man', '/var/lib/systemd', '/var/lib/pr-helper'];
const APT = ['-y', '-q', '-o', 'DPkg::Lock::Timeout=300'];

const canRun =
  requireRoot('the Debian package test', 'it installs the package into this system') &&
  requireTool('/usr/bin/dpkg-deb', 'dpkg') &&
  requireTool('/usr/bin/dpkg-gencontrol', 'dpkg-dev') &&
  requireTool('/usr/bin/lintian', 'lintian') &&
  requireTool('/usr/bin/systemd-analyze', 'systemd') &&
  requireTool('/usr/bin/apt-get', 'apt');

function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(command, args, { encoding: 'utf8', cwd: REPO_ROOT, env: { ...process.env, LC_ALL: 'C.UTF-8', ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function installed(): boolean {
  return run('dpkg-query', ['-W', '-f=${db:Status-Status}', 'pr-helper']).stdout === 'installed';
}

/** Every path under WATCHED, symlinks not followed. */
function listing(): Set<string> {
  const paths = new Set<string>();
  const visit = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      // Python writes these on a module's first import, whoever runs it.
      if (entry.name === '__pycache__') continue;
      const path = join(dir, entry.name);
      paths.add(path);
      if (entry.isDirectory()) visit(path);
    }
  };
  WATCHED.filter((dir) => existsSync(dir)).forEach(visit);
  return paths;
}

describe.runIf(canRun)('the Debian package', () => {
  const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const scratch = mkdtempSync(join(tmpdir(), 'prh-deb-'));
  let deb = '';
  let before = new Set<string>();
  let packageFiles: string[] = [];
  let manCacheExisted = false;

  beforeAll(() => {
    if (installed()) throw new Error('pr-helper is already installed on this machine; this test would purge it: apt-get purge pr-helper first');
    // npm test has compiled dist/ already; this is `npm run package:deb` without its tsc.
    const build = run(process.execPath, ['dist/scripts/package-deb.js']);
    expect(build.stderr).toBe('');
    expect(build.code).toBe(0);
    deb = build.stdout.trim();
    expect(deb).toMatch(new RegExp(`/build/pr-helper_${version.replaceAll('.', '\\.')}_[a-z0-9]+\\.deb$`));
    manCacheExisted = existsSync(MAN_CACHE);
    before = listing();
    const install = run('apt-get', ['install', ...APT, deb], { DEBIAN_FRONTEND: 'noninteractive' });
    expect(install.code, install.stderr).toBe(0);
    packageFiles = run('dpkg-query', ['-L', 'pr-helper']).stdout.split('\n').filter((p) => p !== '' && p !== '/.');
  }, 300_000);

  afterAll(() => {
    if (installed()) run('apt-get', ['purge', ...APT, 'pr-helper'], { DEBIAN_FRONTEND: 'noninteractive' });
    if (!manCacheExisted) rmSync(MAN_CACHE, { force: true });
    rmSync(scratch, { recursive: true, force: true });
  }, 120_000);

  it('has no lintian errors', () => {
    const r = run('lintian', ['--no-tag-display-limit', deb]);
    const tags = (r.stdout + r.stderr).split('\n').filter((l) => /^[EWIP]: /.test(l));
    if (tags.length > 0) console.info(`lintian on ${deb}:\n${tags.join('\n')}`);
    expect(tags.filter((l) => l.startsWith('E: '))).toEqual([]);
    expect(r.code).toBe(0);
  });

  it('declares Depends: nodejs (>= 20) and /etc/default/pr-helper as a conffile', () => {
    const fields = run('dpkg-query', ['-W', '-f=${Depends}\n${Conffiles}\n', 'pr-helper']).stdout;
    expect(fields.split('\n')[0]).toMatch(/^nodejs \(>= 20\), libc6 \(>= [\d.]+\)$/);
    expect(fields).toMatch(/^ \/etc\/default\/pr-helper [0-9a-f]{32}$/m);
    const defaults = readFileSync('/etc/default/pr-helper', 'utf8').split('\n');
    expect(defaults.filter((l) => l !== '' && !l.startsWith('#'))).toEqual([]);
  });

  it('installs the tree under /usr/lib/pr-helper with production modules only', () => {
    for (const path of ['package.json', 'dist/src/cli/main.js', 'build/Release/pr_native.node', 'node_modules/pino/package.json', 'node_modules/commander/package.json']) {
      expect(packageFiles, path).toContain(join(DEBIAN_PACKAGE_ROOT, path));
    }
    const modules = readdirSync(join(DEBIAN_PACKAGE_ROOT, 'node_modules'));
    for (const dev of ['vitest', 'typescript', '@types']) expect(modules).not.toContain(dev);
    for (const path of ['/usr/share/man/man8/pr-helper.8.gz', '/usr/share/doc/pr-helper/copyright', '/usr/share/doc/pr-helper/changelog.gz',
      '/usr/share/doc/pr-helper/libvirt-qemu.conf.snippet', '/usr/share/doc/pr-helper/qemu-example.sh', ...UNITS]) {
      expect(packageFiles).toContain(path);
    }
  });

  it('/usr/bin/pr-helper is a regular file that execs /usr/bin/node with the fixed flags', () => {
    const stat = lstatSync(LAUNCHER);
    expect(stat.isFile()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o755);
    expect(readFileSync(LAUNCHER, 'utf8')).toBe(renderLauncher('/usr/bin/node', join(DEBIAN_PACKAGE_ROOT, 'dist/src/cli/main.js')));
  });

  it('pr-helper -V and --help', () => {
    expect(run(LAUNCHER, ['-V'])).toEqual({ code: 0, stdout: `pr-helper ${version}\n`, stderr: '' });
    const help = run(LAUNCHER, ['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^ {2}client \[options\] ACTION\.\.\. /m);
    expect(help.stdout).toMatch(/^ {2}check \[options\] /m);
  });

  it('the installed daemon serves a simulated disk as pr-helper; pr-helper check passes against it', async () => {
    const socket = join(scratch, 's.sock');
    const daemon = await startProcess(LAUNCHER, ['--simulate', '-k', socket], socket);
    try {
      const pid = daemon.proc.pid!;
      expect(readFileSync(`/proc/${pid}/comm`, 'utf8')).toBe('pr-helper\n');
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]).toBe('pr-helper');
      expect(readlinkSync(`/proc/${pid}/exe`)).toBe(realpathSync('/usr/bin/node'));
      expect(run('pidof', ['pr-helper']).stdout.trim().split(' ')).toContain(String(pid));
      const check = run(LAUNCHER, ['check', '--socket', socket]);
      expect(check.stderr).toBe('');
      expect(check.stdout).toMatch(/^ok +handshake: a PR helper answers/m);
      expect(check.code).toBe(0);
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });

  it('systemd-analyze verify accepts the installed units, man page included', () => {
    expect(run('systemd-analyze', ['verify', ...UNITS])).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('the postinst enabled pr-helper.socket through deb-systemd-helper', () => {
    expect(lstatSync(SOCKET_ENABLED).isSymbolicLink()).toBe(true);
    expect(readlinkSync(SOCKET_ENABLED)).toMatch(/\/lib\/systemd\/system\/pr-helper\.socket$/);
  });

  it('apt-get purge leaves nothing of it behind', () => {
    const purge = run('apt-get', ['purge', ...APT, 'pr-helper'], { DEBIAN_FRONTEND: 'noninteractive' });
    expect(purge.code, purge.stderr).toBe(0);
    expect(installed()).toBe(false);
    expect(packageFiles.filter((p) => existsSync(p) && !lstatSync(p).isDirectory())).toEqual([]);
    const after = listing();
    expect([...after].filter((p) => !before.has(p)), 'added').toEqual([]);
    expect([...before].filter((p) => !after.has(p)), 'removed').toEqual([]);
  });
});
