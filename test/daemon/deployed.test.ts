/**
 * The daemon started the ways it is deployed: with the systemd unit's exact
 * credentials, by a libvirt-style launcher that leaks a locked pidfile on
 * fd 3, from an installation the dropped user cannot read, with a foreign
 * NOTIFY_SOCKET, and signalled as Node's debugger would be.
 */
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HelperClient } from '../../src/client/client.js';
import { readThreadCredentials } from '../../src/daemon/privileges.js';
import { DAEMON_ENTRY, requireTool, startProcess } from '../helpers/daemon.js';
import { startNotifyReceiver } from '../helpers/notify-receiver.js';
import { REPO_ROOT } from '../helpers/repo-root.js';

const asRoot = process.getuid!() === 0;
if (!asRoot) {
  if (process.env.CI) throw new Error('test/daemon/deployed.test.ts needs root (CI runs as root)');
  console.warn('SKIPPING test/daemon/deployed.test.ts: needs root');
}
const dir = mkdtempSync(join(tmpdir(), 'pr-deployed-'));
// Sockets of daemons started as another user go here too.
chmodSync(dir, 0o1777);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const RAWIO = 1n << 17n;

/** Every thread of `pid` holds at most CAP_SYS_RAWIO in every set. */
function expectNothingBeyondRawio(pid: number): void {
  for (const t of readThreadCredentials(`/proc/${pid}/task`)) {
    for (const held of [t.effective, t.permitted, t.inheritable, t.ambient, t.bounding]) expect(held & ~RAWIO).toBe(0n);
    expect(t.noNewPrivs).toBe(true);
  }
}

async function handshake(socket: string): Promise<void> {
  const client = await HelperClient.connect(socket);
  client.close();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!asRoot)('started as deployed', () => {
  const haveActivate = requireTool('/usr/bin/systemd-socket-activate', 'systemd');
  const haveSetpriv = requireTool('/usr/bin/setpriv', 'util-linux');

  it.skipIf(!haveActivate || !haveSetpriv)('starts and serves under the unit\'s credentials (bounding set and ambient CAP_SYS_RAWIO only)', async () => {
    const socket = join(dir, 'unit.sock');
    const unitCaps = ['--bounding-set', '-all,+sys_rawio', '--inh-caps', '-all,+sys_rawio', '--ambient-caps', '-all,+sys_rawio'];
    const daemon = await startProcess('/usr/bin/setpriv', [...unitCaps, '--', '/usr/bin/systemd-socket-activate', '-l', socket, process.execPath, DAEMON_ENTRY], socket);
    // systemd-socket-activate execs the daemon on the first connection: same pid.
    await handshake(socket);
    expectNothingBeyondRawio(daemon.proc.pid!);
    const main = readThreadCredentials(`/proc/${daemon.proc.pid}/task`).find((t) => t.tid === daemon.proc.pid)!;
    expect(main.effective).toBe(RAWIO);
    expect(await daemon.stop()).toBe(0);
    expect(daemon.stderr()).not.toContain('EPERM');
  });

  it.skipIf(!haveActivate || !haveSetpriv)('starts under the unit\'s variant with User= (ambient CAP_SYS_RAWIO, no uid change possible)', async () => {
    const socket = join(dir, 'unit-user.sock');
    const daemon = await startProcess('/usr/bin/setpriv', [
      '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps', '-all,+sys_rawio', '--ambient-caps', '-all,+sys_rawio', '--bounding-set', '-all,+sys_rawio',
      '--', '/usr/bin/systemd-socket-activate', '-l', socket, process.execPath, DAEMON_ENTRY,
    ], socket);
    await handshake(socket);
    expectNothingBeyondRawio(daemon.proc.pid!);
    expect(await daemon.stop()).toBe(0);
  });

  it('keeps a locked pidfile leaked on fd 3 by a libvirt-style launcher, so a libvirt-style stop kills it', async () => {
    const socket = join(dir, 'libvirt.sock');
    const pidfile = join(dir, 'libvirt.pid');
    // As vircommand.c: the child locks the pidfile, writes its pid, and execs the helper with the descriptor leaked.
    const launcher = [
      'import fcntl, os, sys',
      'fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)',
      'fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)',
      'os.write(fd, str(os.getpid()).encode())',
      'if fd != 3:',
      '    os.dup2(fd, 3)',
      'os.set_inheritable(3, True)',
      'os.execv(sys.argv[2], sys.argv[2:])',
    ].join('\n');
    const daemon = await startProcess('/usr/bin/python3', ['-c', launcher, pidfile, process.execPath, DAEMON_ENTRY, '-k', socket], socket);
    const pid = daemon.proc.pid!;
    expect(readlinkSync(`/proc/${pid}/fd/3`)).toBe(pidfile);
    // virPidFileForceCleanupPath: kill only if the lock is still held.
    const inode = statSync(pidfile).ino;
    const lockHolder = readFileSync('/proc/locks', 'utf8').split('\n').find((l) => l.includes('POSIX') && l.includes(`:${inode} `));
    expect(lockHolder).toMatch(new RegExp(`POSIX\\s+ADVISORY\\s+WRITE\\s+${pid}\\s`));
    expectNothingBeyondRawio(pid);
    expect(await daemon.stop('SIGTERM')).toBe(0);
  });

  it('-u nobody serves from an installation under a directory only root can read', async () => {
    const install = join(mkdtempSync(join(tmpdir(), 'pr-root-only-')), 'pr-helper');
    mkdirSync(install, { recursive: true });
    chmodSync(join(install, '..'), 0o700);
    for (const part of ['dist/src', 'build/Release/pr_native.node', 'package.json']) cpSync(join(REPO_ROOT, part), join(install, part), { recursive: true });
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(install, 'node_modules'));
    try {
      const socket = join(dir, 'root-only.sock');
      const daemon = await startProcess(process.execPath, [join(install, 'dist/src/cli/main.js'), '-k', socket, '-u', 'nobody', '--simulate'], socket);
      await handshake(socket);
      expect(readThreadCredentials(`/proc/${daemon.proc.pid}/task`).every((t) => t.uids.every((u) => u === 65534))).toBe(true);
      await daemon.stop();
      expect(daemon.stderr()).not.toMatch(/EACCES|\n\s+at /);
    } finally {
      rmSync(join(install, '..'), { recursive: true, force: true });
    }
  });

  it('sends nothing to an inherited NOTIFY_SOCKET that is not its own service manager\'s', async () => {
    const notify = join(dir, 'foreign-notify.sock');
    const receiver = await startNotifyReceiver(notify, 3);
    const socket = join(dir, 'foreign.sock');
    // What libvirtd leaks: its own NOTIFY_SOCKET and SYSTEMD_EXEC_PID.
    const daemon = await startProcess(process.execPath, [DAEMON_ENTRY, '-k', socket, '--simulate'], socket, { env: { NOTIFY_SOCKET: notify, SYSTEMD_EXEC_PID: String(process.pid) } });
    await handshake(socket);
    expect(await receiver.received).toBeNull();
    await daemon.stop();
  });

  it('ignores SIGUSR1: no inspector port opens and the daemon keeps serving', async () => {
    const socket = join(dir, 'usr1.sock');
    const daemon = await startProcess(process.execPath, [DAEMON_ENTRY, '-k', socket], socket);
    const pid = daemon.proc.pid!;
    process.kill(pid, 'SIGUSR1');
    await sleep(1000);
    await handshake(socket);
    const listening = readFileSync('/proc/net/tcp', 'utf8') + readFileSync('/proc/net/tcp6', 'utf8');
    // 9229 = 0x240D; state 0A is LISTEN.
    expect(listening).not.toMatch(/:240D [0-9A-F:]+ 0A /);
    expect(daemon.stderr()).not.toContain('Debugger listening');
    expect(await daemon.stop()).toBe(0);
  });

  it('a crafted PR_HELPER_HANDOVER in the environment does not skip the drop', async () => {
    const socket = join(dir, 'crafted.sock');
    const crafted = JSON.stringify({ listenFd: null, ownPath: null, pidfile: null, readyFd: null, dropped: { uid: 0, gid: 0, capabilities: '0x1ffffffffff' } });
    const daemon = await startProcess(process.execPath, [DAEMON_ENTRY, '-k', socket], socket, { env: { PR_HELPER_HANDOVER: crafted, PR_HELPER_READY_FD: '2' } });
    await handshake(socket);
    expectNothingBeyondRawio(daemon.proc.pid!);
    expect(await daemon.stop()).toBe(0);
  });
});
