/**
 * npm run package:deb: build/pr-helper_<version>_<arch>.deb from this
 * checkout's compiled tree with dpkg's own tools (dpkg-shlibdeps and
 * dpkg-gencontrol write the control file, dpkg-deb the archive). It needs no
 * network: the production node_modules are copied from the checkout, so
 * `npm ci` (which also builds the addon) and `tsc` must have run.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DEBIAN_PACKAGE_ROOT, PACKAGE_ROOT } from '../src/installation.js';
import { renderCopyright, type BundledModule } from './deb/copyright.js';
import { renderLauncher } from './deb/launcher.js';

const PACKAGE = 'pr-helper';
const NODE = '/usr/bin/node';
const ADDON = 'build/Release/pr_native.node';
const PACKAGING = join(PACKAGE_ROOT, 'packaging');
const WORK = join(PACKAGE_ROOT, 'build', 'deb');
/** The package's file system tree, where dpkg-shlibdeps and dpkg-gencontrol expect it. */
const TREE = join(WORK, 'debian', PACKAGE);
const LIB = join(TREE, DEBIAN_PACKAGE_ROOT);
const DOC = join(TREE, 'usr/share/doc', PACKAGE);
const MAINTAINER_SCRIPTS = ['postinst', 'prerm', 'postrm'];

class PackagingError extends Error {}

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const r = spawnSync(command, args, { encoding: 'utf8', cwd: options.cwd ?? PACKAGE_ROOT, env: options.env ?? process.env });
  if (r.error) throw new PackagingError(`${command}: ${r.error.message} (dpkg-dev, dpkg and binutils provide the tools)`);
  if (r.status !== 0) throw new PackagingError(`${command} ${args.join(' ')} failed (exit ${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

function requireFile(path: string, remedy: string): void {
  if (!existsSync(path)) throw new PackagingError(`${path} missing: ${remedy}`);
}

function copyTo(destination: string, source: string): void {
  mkdirSync(dirname(destination), { recursive: true });
  copyFileSync(source, destination);
}

function writeTo(destination: string, content: string | Buffer): void {
  mkdirSync(dirname(destination), { recursive: true });
  writeFileSync(destination, content);
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** The compiled JavaScript; source maps point at TypeScript the package does not ship. */
function installCompiledTree(): void {
  cpSync(join(PACKAGE_ROOT, 'dist/src'), join(LIB, 'dist/src'), { recursive: true, filter: (src) => !src.endsWith('.map') });
  // dh_strip's treatment of shared objects: no symbols beyond those dlopen needs, no build notes.
  const addon = join(LIB, ADDON);
  copyTo(addon, join(PACKAGE_ROOT, ADDON));
  run('strip', ['--strip-unneeded', '--remove-section=.comment', '--remove-section=.note', addon]);
  // What Node reads at run time: "type" makes dist/ ES modules, "version" is -V.
  const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  const runtime = Object.fromEntries(['name', 'version', 'description', 'license', 'type', 'engines', 'dependencies'].map((k) => [k, pkg[k]]));
  writeTo(join(LIB, 'package.json'), JSON.stringify(runtime, null, 2) + '\n');
}

const LICENSE_FILE = /^(licen[cs]e|copying)(\.(md|txt))?$/i;
/**
 * At a module's top level: what serves its development, not its users (tests,
 * benchmarks, documentation), and its license, which debian/copyright quotes.
 */
const NOT_SHIPPED = /^(tests?|__tests__|docs?|benchmarks?|examples?|.*\.(md|markdown|html)|(licen[cs]e|copying)(\.txt)?)$/i;

/** Whether a path inside a module (relative to it) belongs in the package. */
function shipped(rel: string): boolean {
  const parts = rel.split('/');
  // node_modules: a nested module is listed, and copied, on its own. Dot files: VCS, CI and editor settings.
  if (parts.some((p) => p === 'node_modules' || p.startsWith('.'))) return false;
  return !NOT_SHIPPED.test(parts[0]!);
}

/** Copies the production dependency tree as npm installed it, without development files, and describes each module for the copyright file. */
function installProductionModules(): BundledModule[] {
  const dirs = run('npm', ['ls', '--omit=dev', '--all', '--parseable'])
    .split('\n')
    .filter((d) => d !== '' && d !== PACKAGE_ROOT);
  return dirs.map((dir) => {
    const rel = relative(PACKAGE_ROOT, dir);
    cpSync(dir, join(LIB, rel), { recursive: true, filter: (src) => src === dir || shipped(relative(dir, src)) });
    const meta = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string; license?: string; author?: string | { name: string } };
    const licenseFile = readdirSync(dir).find((f) => LICENSE_FILE.test(f));
    if (!licenseFile) throw new PackagingError(`${rel} has no license file to put in debian/copyright`);
    return {
      installedPath: relative(TREE, join(LIB, rel)),
      name: meta.name,
      license: meta.license ?? 'UNKNOWN',
      licenseText: readFileSync(join(dir, licenseFile), 'utf8'),
      author: typeof meta.author === 'string' ? meta.author : (meta.author?.name ?? null),
    };
  });
}

function installSystemFiles(): void {
  writeTo(join(TREE, 'usr/bin', PACKAGE), renderLauncher(NODE, join(DEBIAN_PACKAGE_ROOT, 'dist/src/cli/main.js')));
  for (const unit of ['pr-helper.socket', 'pr-helper.service']) copyTo(join(TREE, 'usr/lib/systemd/system', unit), join(PACKAGING, unit));
  copyTo(join(TREE, 'etc/default', PACKAGE), join(PACKAGING, 'pr-helper.default'));
  // zlib writes no name and no time stamp into the gzip header (gzip -n), so the package is reproducible.
  writeTo(join(TREE, 'usr/share/man/man8/pr-helper.8.gz'), gzipSync(readFileSync(join(PACKAGING, 'pr-helper.8')), { level: 9 }));
  for (const doc of ['libvirt-qemu.conf.snippet', 'qemu-example.sh']) copyTo(join(DOC, doc), join(PACKAGING, doc));
  // A native package's Debian changelog is changelog.gz (Debian Policy 12.7).
  writeTo(join(DOC, 'changelog.gz'), gzipSync(readFileSync(join(PACKAGING, 'deb/changelog')), { level: 9 }));
}

function isScript(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(2);
    return readSync(fd, head, 0, 2, 0) === 2 && head.toString() === '#!';
  } finally {
    closeSync(fd);
  }
}

/**
 * Owner-writable and world-readable, as dh_fixperms leaves them. Executable:
 * directories, and scripts (#!) except the examples in /usr/share/doc.
 */
function fixPermissions(): void {
  for (const entry of readdirSync(TREE, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    const executable = entry.isDirectory() || (!path.startsWith(DOC + '/') && isScript(path));
    chmodSync(path, executable ? 0o755 : 0o644);
  }
  chmodSync(TREE, 0o755);
}

function writeControlArea(): void {
  const control = join(TREE, 'DEBIAN');
  mkdirSync(control);
  for (const script of MAINTAINER_SCRIPTS) {
    copyTo(join(control, script), join(PACKAGING, 'deb', script));
    chmodSync(join(control, script), 0o755);
  }
  // Every file the package puts in /etc is a conffile, as dh_installdeb would mark them.
  const conffiles = walk(join(TREE, 'etc')).map((f) => '/' + relative(TREE, f));
  writeFileSync(join(control, 'conffiles'), conffiles.join('\n') + '\n');
  const md5sums = walk(TREE)
    .filter((f) => !f.startsWith(control + '/'))
    .map((f) => `${createHash('md5').update(readFileSync(f)).digest('hex')}  ${relative(TREE, f)}`);
  writeFileSync(join(control, 'md5sums'), md5sums.join('\n') + '\n');
}

function buildDeb(): string {
  requireFile(join(PACKAGE_ROOT, 'dist/src/cli/main.js'), 'run `npx tsc -p tsconfig.json` (npm run package:deb does)');
  requireFile(join(PACKAGE_ROOT, ADDON), 'run `npm ci` (it builds the addon)');
  const version = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const changelog = join(PACKAGING, 'deb/changelog');
  const debianVersion = run('dpkg-parsechangelog', ['-l', changelog, '-SVersion']).trim();
  if (debianVersion !== version) {
    throw new PackagingError(`packaging/deb/changelog is at ${debianVersion} but package.json at ${version}: add a changelog entry (dch -v ${version})`);
  }
  // Time stamps in the archive come from the changelog, not from the build.
  const env = { ...process.env, SOURCE_DATE_EPOCH: run('dpkg-parsechangelog', ['-l', changelog, '-STimestamp']).trim() };

  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(join(WORK, 'debian'), { recursive: true });
  copyFileSync(join(PACKAGING, 'deb/control'), join(WORK, 'debian/control'));
  copyFileSync(changelog, join(WORK, 'debian/changelog'));

  installCompiledTree();
  const modules = installProductionModules();
  installSystemFiles();
  writeTo(join(DOC, 'copyright'), renderCopyright(modules));
  fixPermissions();
  writeControlArea();

  // The addon needs libc; its N-API symbols come from the node executable (Depends: nodejs), hence --warnings=2.
  run('dpkg-shlibdeps', ['--warnings=2', '-Tdebian/substvars', '-e', relative(WORK, join(LIB, ADDON))], { cwd: WORK });
  run('dpkg-gencontrol', [`-p${PACKAGE}`, `-Pdebian/${PACKAGE}`, '-Tdebian/substvars', '-fdebian/files'], { cwd: WORK, env });
  const arch = run('dpkg-architecture', ['-qDEB_HOST_ARCH']).trim();
  const deb = join(PACKAGE_ROOT, 'build', `${PACKAGE}_${version}_${arch}.deb`);
  run('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', TREE, deb + '.tmp'], { env });
  renameSync(deb + '.tmp', deb);
  return deb;
}

try {
  console.log(buildDeb());
} catch (err) {
  if (!(err instanceof PackagingError)) throw err;
  console.error(`package:deb: ${err.message}`);
  process.exit(1);
}
