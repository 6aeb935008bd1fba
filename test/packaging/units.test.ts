/**
 * The files in packaging/: systemd's own verifier on the units, groff and man
 * on the man page, and the promises the units and snippets make.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseArguments } from '../../src/cli/options.js';
import { DAEMON_ENTRY, requireTool } from '../helpers/daemon.js';
import { REPO_ROOT } from '../helpers/repo-root.js';

const PACKAGING = join(REPO_ROOT, 'packaging');
const SERVICE = join(PACKAGING, 'pr-helper.service');
const SOCKET = join(PACKAGING, 'pr-helper.socket');
const MAN_PAGE = join(PACKAGING, 'pr-helper.8');
const DEFAULTS = join(PACKAGING, 'pr-helper.default');
const DOCUMENTED_EXEC_START = 'ExecStart=/usr/bin/pr-helper $PR_HELPER_OPTIONS';

const read = (path: string): string => readFileSync(path, 'utf8');
/** Directive lines of a unit file, comments dropped. */
const directives = (text: string): string[] => text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));

const scratch = mkdtempSync(join(tmpdir(), 'prh-units-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function run(command: string, args: string[]) {
  const r = spawnSync(command, args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C.UTF-8', MANWIDTH: '80' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('systemd units', () => {
  it('pass systemd-analyze verify without a single warning (ExecStart pointed at a real binary)', () => {
    if (!requireTool('/usr/bin/systemd-analyze', 'systemd')) return;
    const service = read(SERVICE);
    expect(directives(service).filter((l) => l.startsWith('ExecStart='))).toEqual([DOCUMENTED_EXEC_START]);
    // verify insists that ExecStart exists; /usr/bin/pr-helper does not on a development machine
    // (test/packaging/deb.test.ts verifies the units as the package installs them).
    writeFileSync(join(scratch, 'pr-helper.service'), service.replace(DOCUMENTED_EXEC_START, `ExecStart=${process.execPath} ${DAEMON_ENTRY} $PR_HELPER_OPTIONS`));
    copyFileSync(SOCKET, join(scratch, 'pr-helper.socket'));
    const r = run('systemd-analyze', ['verify', '--man=no', join(scratch, 'pr-helper.socket'), join(scratch, 'pr-helper.service')]);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('the service is a confined Type=notify daemon with CAP_SYS_RAWIO only', () => {
    const lines = directives(read(SERVICE));
    for (const line of [
      'Type=notify',
      'EnvironmentFile=-/etc/default/pr-helper',
      'Restart=on-failure',
      'CapabilityBoundingSet=CAP_SYS_RAWIO',
      'AmbientCapabilities=CAP_SYS_RAWIO',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'PrivateNetwork=yes',
      'RestrictAddressFamilies=AF_UNIX',
      'DevicePolicy=closed',
      'DeviceAllow=block-sd rw',
      'DeviceAllow=block-device-mapper rw',
      'DeviceAllow=char-sg rw',
    ]) {
      expect(lines).toContain(line);
    }
    // The socket comes from systemd; -k would make the daemon refuse to start.
    expect(lines.find((l) => l.startsWith('ExecStart='))).not.toMatch(/\s-k\b|--socket/);
    expect(read(SERVICE)).toMatch(/^#User=/m);
  });

  it('the socket is the qemu-pr-helper path, group kvm, mode 0660, removed on stop', () => {
    const lines = directives(read(SOCKET));
    for (const line of ['ListenStream=/run/qemu-pr-helper.sock', 'SocketMode=0660', 'SocketGroup=kvm', 'RemoveOnStop=yes', 'WantedBy=sockets.target']) {
      expect(lines).toContain(line);
    }
  });
});

describe('/etc/default/pr-helper', () => {
  const lines = read(DEFAULTS).split('\n');
  const examples = lines.filter((l) => l.startsWith('#PR_HELPER_OPTIONS=')).map((l) => /^#PR_HELPER_OPTIONS="([^"]*)"$/.exec(l)?.[1]);

  it('sets nothing: every line is a comment', () => {
    expect(lines.filter((l) => l !== '' && !l.startsWith('#'))).toEqual([]);
  });

  it('every example is one quoted PR_HELPER_OPTIONS line the daemon accepts, without the options the socket unit owns', () => {
    expect(examples.length).toBeGreaterThan(3);
    for (const example of examples) {
      expect(example, 'quoted value').toBeDefined();
      const argv = example!.split(' ');
      expect(parseArguments(argv, '0').kind, example).toBe('run');
      for (const owned of ['-k', '--socket', '--socket-mode', '--socket-group', '-d', '--daemon', '-f', '--pidfile']) expect(argv).not.toContain(owned);
    }
  });
});

describe('integration snippets', () => {
  it('libvirt: exactly one pr_helper setting', () => {
    const settings = directives(read(join(PACKAGING, 'libvirt-qemu.conf.snippet')));
    expect(settings).toEqual(['pr_helper = "/usr/bin/pr-helper"']);
  });

  it('the QEMU example is valid sh with a pr-manager-helper object, file.pr-manager and scsi-block', () => {
    const script = join(PACKAGING, 'qemu-example.sh');
    expect(run('sh', ['-n', script])).toEqual({ code: 0, stdout: '', stderr: '' });
    const text = read(script);
    expect(text).toContain('-object pr-manager-helper,id=pr0,path=');
    expect(text).toContain('file.pr-manager=pr0');
    expect(text).toContain('-device scsi-block,');
  });
});

describe('man page', () => {
  it('groff finds nothing to warn about', () => {
    if (!requireTool('/usr/bin/groff', 'groff')) return;
    expect(run('groff', ['-man', '-ww', '-z', MAN_PAGE])).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('man renders it without warnings', () => {
    if (!requireTool('/usr/bin/man', 'man-db')) return;
    const r = run('man', ['--warnings', '-l', MAN_PAGE]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('DIFFERENCES FROM QEMU-PR-HELPER');
  });

  it('documents every daemon option that --help lists, and the subcommands', () => {
    if (!existsSync(DAEMON_ENTRY)) throw new Error(`${DAEMON_ENTRY} missing: run npm run build`);
    const help = run(process.execPath, [DAEMON_ENTRY, '--help']).stdout;
    const options = [...new Set(help.match(/--[a-z][a-z-]+/g))];
    expect(options).toContain('--simulate');
    const page = read(MAN_PAGE).replaceAll('\\-', '-');
    for (const option of options) expect(page, option).toContain(option);
    for (const word of ['pr-helper client', 'pr-helper check', '--transport-id', '--relative-target-port', '--alloc-length', '--readonly']) {
      expect(page).toContain(word);
    }
  });
});
