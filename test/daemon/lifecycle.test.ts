import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HelperClient } from '../../src/client/client.js';
import { DAEMON_ENTRY, requireTool, startDaemon, startProcess } from '../helpers/daemon.js';
import { startNotifyReceiver } from '../helpers/notify-receiver.js';
import { waitFor } from '../helpers/wait.js';

/** PERSISTENT RESERVE IN, READ KEYS, allocation length 8. */
const READ_KEYS_CDB = Uint8Array.from([0x5e, 0, 0, 0, 0, 0, 0, 0, 8, 0]);

const dir = mkdtempSync(join(tmpdir(), 'pr-life-'));
chmodSync(dir, 0o1777);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const asRoot = process.getuid!() === 0;

function runCli(args: string[], env: Record<string, string> = {}): { status: number; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [DAEMON_ENTRY, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { status: run.status ?? -1, stdout: run.stdout, stderr: run.stderr };
}

/** Capability and uid lines of every thread of `pid`, the main thread (tid = pid) first. */
function threadCredentials(pid: number): Array<{ tid: number; capEff: string; capPrm: string; capBnd: string; capAmb: string; uid: string; groups: string; nnp: string }> {
  const tasks = execFileSync('ls', [`/proc/${pid}/task`], { encoding: 'utf8' }).trim().split('\n').map(Number).sort((a, b) => (a === pid ? -1 : b === pid ? 1 : a - b));
  return tasks.map((tid) => {
    const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    const field = (name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)![1]!.trim();
    return { tid, capEff: field('CapEff'), capPrm: field('CapPrm'), capBnd: field('CapBnd'), capAmb: field('CapAmb'), uid: field('Uid'), groups: field('Groups'), nnp: field('NoNewPrivs') };
  });
}

const RAWIO = '0000000000020000';
const NONE = '0000000000000000';

/** The main thread keeps CAP_SYS_RAWIO (it starts the SG_IO workers); every other thread holds nothing. */
function expectRawioOnMainOnly(pid: number, uid: string): void {
  const threads = threadCredentials(pid);
  expect(threads.length).toBeGreaterThan(4);
  for (const t of threads) {
    const held = t.tid === pid ? RAWIO : NONE;
    expect(t).toMatchObject({ capEff: held, capPrm: held, capBnd: RAWIO, capAmb: NONE, uid, groups: '', nnp: '1' });
  }
}

describe('start-up, privileges and shutdown', () => {
  it.skipIf(!asRoot)('as root keeps uid 0 with nothing beyond CAP_SYS_RAWIO in any thread, and unlinks its socket on SIGTERM', async () => {
    const socket = join(dir, 'root.sock');
    const daemon = await startDaemon(socket);
    expectRawioOnMainOnly(daemon.proc.pid!, '0\t0\t0\t0');
    expect(await daemon.stop()).toBe(0);
    expect(existsSync(socket)).toBe(false);
  });

  it.skipIf(!asRoot)('-u/-g drops to that user in place; the SG_IO threads hold CAP_SYS_RAWIO, nothing else does', async () => {
    const socket = join(dir, 'nobody.sock');
    const daemon = await startDaemon(socket, ['-u', 'nobody', '-g', '65534']);
    const pid = daemon.proc.pid!;
    const before = new Set(threadCredentials(pid).map((t) => t.tid));
    expectRawioOnMainOnly(pid, '65534\t65534\t65534\t65534');
    // A command on /dev/null reaches SG_IO (ENOTTY) on a worker started after the drop.
    const client = await HelperClient.connect(socket);
    const devNull = openSync('/dev/null', 'r+');
    await client.execute(READ_KEYS_CDB, devNull, undefined, 8);
    closeSync(devNull);
    const workers = threadCredentials(pid).filter((t) => !before.has(t.tid));
    expect(workers.length).toBeGreaterThan(0);
    for (const w of workers) expect(w).toMatchObject({ capEff: RAWIO, capPrm: RAWIO, uid: '65534\t65534\t65534\t65534', nnp: '1' });
    client.close();
    expect(await daemon.stop()).toBe(0);
  });

  it.skipIf(!asRoot)('in simulated mode as root drops every capability', async () => {
    const socket = join(dir, 'sim-root.sock');
    const daemon = await startDaemon(socket, ['--simulate', '-u', 'nobody']);
    for (const t of threadCredentials(daemon.proc.pid!)) expect(t).toMatchObject({ capEff: NONE, capPrm: NONE, capBnd: NONE, capAmb: NONE });
    await daemon.stop();
  });

  it('rejects an unknown user and group with status 1 and leaves no socket', () => {
    const socket = join(dir, 'baduser.sock');
    expect(runCli(['-k', socket, '--simulate', '-u', 'no-such-user'])).toMatchObject({ status: 1, stderr: "pr-helper: invalid user 'no-such-user'\n" });
    expect(runCli(['-k', socket, '--simulate', '-g', 'no-such-group'])).toMatchObject({ status: 1, stderr: "pr-helper: invalid group 'no-such-group'\n" });
    expect(existsSync(socket)).toBe(false);
  });

  it('refuses to steal the socket of a running daemon', async () => {
    const socket = join(dir, 'busy.sock');
    const first = await startDaemon(socket, ['--simulate']);
    expect(runCli(['-k', socket, '--simulate'])).toMatchObject({ status: 1, stderr: `pr-helper: another daemon is already serving ${socket}\n` });
    const client = await HelperClient.connect(socket);
    client.close();
    await first.stop();
  });

  it('pidfile: a planted symlink, a FIFO or another uid\'s file is refused and left alone; our own 0644 file becomes 0600', async () => {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'root only\n', { mode: 0o600 });
    const link = join(dir, 'link.pid');
    symlinkSync(victim, link);
    expect(runCli(['-k', join(dir, 'pl.sock'), '--simulate', '-f', link])).toMatchObject({ status: 1, stderr: `pr-helper: Could not create '${link}': it is a symbolic link\n` });
    expect(readFileSync(victim, 'utf8')).toBe('root only\n');
    const fifo = join(dir, 'fifo.pid');
    execFileSync('mkfifo', [fifo]);
    expect(runCli(['-k', join(dir, 'pf.sock'), '--simulate', '-f', fifo])).toMatchObject({ status: 1, stderr: `pr-helper: Could not create '${fifo}': it is not a regular file\n` });
    if (asRoot) {
      const foreign = join(dir, 'foreign.pid');
      writeFileSync(foreign, '');
      chownSync(foreign, 65534, 65534);
      expect(runCli(['-k', join(dir, 'po.sock'), '--simulate', '-f', foreign])).toMatchObject({ status: 1, stderr: `pr-helper: Could not create '${foreign}': it belongs to uid 65534\n` });
    }
    const own = join(dir, 'own.pid');
    writeFileSync(own, 'stale\n', { mode: 0o644 });
    chmodSync(own, 0o644);
    const daemon = await startDaemon(join(dir, 'pown.sock'), ['--simulate', '-f', own]);
    expect({ text: readFileSync(own, 'utf8'), mode: statSync(own).mode & 0o777 }).toEqual({ text: `${daemon.proc.pid}\n`, mode: 0o600 });
    expect(await daemon.stop()).toBe(0);
  });

  it('writes a 0600 pidfile, refuses a second holder, removes it on exit', async () => {
    const pidfile = join(dir, 'd.pid');
    const daemon = await startDaemon(join(dir, 'pid1.sock'), ['--simulate', '-f', pidfile]);
    expect(readFileSync(pidfile, 'utf8')).toBe(`${daemon.proc.pid}\n`);
    expect(statSync(pidfile).mode & 0o777).toBe(0o600);
    const second = runCli(['-k', join(dir, 'pid2.sock'), '--simulate', '-f', pidfile]);
    expect(second).toMatchObject({ status: 1, stderr: `pr-helper: Cannot lock pid file ${pidfile}: another instance holds it\n` });
    expect(existsSync(join(dir, 'pid2.sock'))).toBe(false);
    await daemon.stop();
    expect(existsSync(pidfile)).toBe(false);
  });

  it('-d returns 0 only once the detached daemon accepts, and 1 with its error otherwise', async () => {
    const socket = join(dir, 'detached.sock');
    const pidfile = join(dir, 'detached.pid');
    const ok = runCli(['-d', '-k', socket, '-f', pidfile, '--simulate']);
    // Its stderr is /dev/null from now on: the parent says so.
    expect(ok).toMatchObject({ status: 0, stderr: 'pr-helper: running in the background; its log is discarded (stderr is /dev/null): give --log-file PATH to keep it\n' });
    const pid = Number(readFileSync(pidfile, 'utf8'));
    const client = await HelperClient.connect(socket);
    client.close();
    process.kill(pid, 'SIGTERM');
    await waitFor(() => !existsSync(socket), 2000, 20);
    expect(existsSync(socket)).toBe(false);

    const logged = runCli(['-d', '-k', join(dir, 'detached-log.sock'), '-f', `${pidfile}2`, '--simulate', '--log-file', join(dir, 'detached.log')]);
    expect(logged).toMatchObject({ status: 0, stderr: `pr-helper: running in the background; its log goes to ${join(dir, 'detached.log')}\n` });
    expect(readFileSync(join(dir, 'detached.log'), 'utf8')).toContain('"msg":"accepting connections"');
    process.kill(Number(readFileSync(`${pidfile}2`, 'utf8')), 'SIGTERM');

    const bad = runCli(['-d', '-k', join(dir, 'bad.sock'), '--simulate', join(dir, 'missing.json')]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^pr-helper: config .*missing\.json: ENOENT/);
    expect(existsSync(join(dir, 'bad.sock'))).toBe(false);
  });

  it('serves the simulated disk without root', async () => {
    if (!asRoot) return;
    const socket = join(dir, 'unpriv.sock');
    const daemon = await startProcess('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, DAEMON_ENTRY, '-k', socket, '--simulate'], socket, { env: { HOME: dir } });
    expect(threadCredentials(daemon.proc.pid!)[0]!.uid).toBe('65534\t65534\t65534\t65534');
    await daemon.stop();
  });
});

describe('systemd', () => {
  const haveActivate = requireTool('/usr/bin/systemd-socket-activate', 'systemd');

  it.skipIf(!haveActivate)('adopts a socket-activated descriptor, sends READY=1, and never unlinks that socket', async () => {
    const socket = join(dir, 'activated.sock');
    const notify = join(dir, 'notify.sock');
    const receiver = await startNotifyReceiver(notify, 30);
    const daemon = await startProcess('/usr/bin/systemd-socket-activate', ['-l', socket, '-E', `NOTIFY_SOCKET=${notify}`, process.execPath, DAEMON_ENTRY, '--simulate'], socket);
    const client = await HelperClient.connect(socket);
    client.close();
    expect(await receiver.received).toMatch(/READY=1\|STATUS=serving fd 3 \(socket activation\) \(simulated\)\|MAINPID=\d+/);
    expect(await daemon.stop()).toBe(0);
    expect(existsSync(socket)).toBe(true);
  });

  it('LISTEN_FDS=1 with a fd 3 that is not a listening socket: one line, exit 1 (the original runs deaf)', () => {
    for (const open of ['exec 3</etc/hostname', `exec 3<>${join(dir, 'fd3-fifo')}`]) {
      if (open.includes('fifo')) execFileSync('mkfifo', [join(dir, 'fd3-fifo')]);
      const run = spawnSync('/bin/sh', ['-c', `${open}; LISTEN_FDS=1 LISTEN_PID=$$ exec "$0" "$@"`, process.execPath, DAEMON_ENTRY, '--simulate'], { encoding: 'utf8', timeout: 10_000 });
      expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 1, stderr: 'pr-helper: Socket activation failed: fd 3 is not a listening Unix stream socket\n' });
    }
  });

  it.skipIf(!haveActivate)('refuses -k together with socket activation, like the original', async () => {
    const socket = join(dir, 'activated-k.sock');
    const running = startProcess('/usr/bin/systemd-socket-activate', ['-l', socket, process.execPath, DAEMON_ENTRY, '--simulate', '-k', join(dir, 'other.sock')], socket, { expectExit: true });
    await waitFor(() => existsSync(socket), 2000, 20);
    // systemd-socket-activate starts the daemon on the first connection.
    const peer = spawn('/usr/bin/python3', ['-c', `import socket; s=socket.socket(socket.AF_UNIX); s.connect(${JSON.stringify(socket)}); s.recv(4)`]);
    await new Promise((resolve) => peer.on('exit', resolve));
    const daemon = await running;
    expect(await daemon.exited).toBe(1);
    expect(daemon.stderr()).toContain("pr-helper: Unix socket can't be set when using socket activation");
  });
});
