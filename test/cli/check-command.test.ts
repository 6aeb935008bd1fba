/**
 * `pr-helper check`: the compiled CLI against a simulated-disk daemon, against
 * sockets of programs that are not a PR helper, and, for permissions, run as
 * another uid through setpriv; plus the permission decision itself.
 */
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { permissionHint, socketWriteAccess } from '../../src/cli/check-command.js';
import * as native from '../../src/native/binding.js';
import { DAEMON_ENTRY, requireTool, runCli, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { waitFor } from '../helpers/wait.js';
import { writeSimConfig } from '../helpers/sim-config.js';

const NOBODY = 65534;
const asNobody = ['/usr/bin/setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'];
const isRoot = process.getuid?.() === 0;

let dir: string;
let image: string;
let config: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'prh-check-'));
  // Traversable, so that a check run as another uid reaches the socket and meets its own mode.
  chmodSync(dir, 0o755);
  image = join(dir, 'disk.img');
  writeFileSync(image, '');
  truncateSync(image, 1 << 20);
  chmodSync(image, 0o644);
  config = writeSimConfig(dir, [{ name: 'disk0', paths: [{ path: image, initiator: 'iqn.2008-11.org.linux-kvm:node-a' }] }]);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function lines(stdout: string): string[] {
  return stdout.trimEnd().split('\n');
}

describe('pr-helper check against a helper', () => {
  let daemon: RunningDaemon;
  let socket: string;

  beforeAll(async () => {
    socket = join(dir, 'helper.sock');
    daemon = await startDaemon(socket, ['--simulate', config, '--socket-mode', '0600']);
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  it('all checks pass, with the keys READ KEYS found', async () => {
    const register = await runCli(['client', '--socket', socket, '--device', image, 'register', '--sa-key', '0x1234']);
    expect(register.code).toBe(0);
    const r = await runCli(['check', '--socket', socket, '--device', image]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(lines(r.stdout)).toEqual([
      `ok    socket: ${socket} is a socket`,
      expect.stringMatching(/^ok {4}permissions: owner \S+:\S+, mode 0600; uid \d+ (\(\S+\) )?may connect \((root|owner)\)$/),
      'ok    handshake: a PR helper answers (features 0x00000000)',
      `ok    device: ${image} opens read-only`,
      'ok    read-keys: PR generation=0x1, 1 registered reservation key: 0x1234',
    ]);
  });

  it('stops after the handshake without --device; --json', async () => {
    const r = await runCli(['check', '--socket', socket, '--json']);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { ok: boolean; checks: { name: string; ok: boolean; hint: string | null }[] };
    expect(result.ok).toBe(true);
    expect(result.checks.map((c) => [c.name, c.ok, c.hint])).toEqual([
      ['socket', true, null],
      ['permissions', true, null],
      ['handshake', true, null],
    ]);
  });

  it('a device the simulator does not know: READ KEYS fails with the decoded sense and a hint', async () => {
    const stranger = join(dir, 'stranger.img');
    writeFileSync(stranger, 'x');
    const r = await runCli(['check', '--socket', socket, '--device', stranger]);
    expect(r.code).toBe(1);
    expect(lines(r.stdout).at(-1)).toBe(
      "FAIL  read-keys: READ KEYS: CHECK CONDITION: ILLEGAL REQUEST, asc/ascq 25/00 (logical unit not supported). Hint: the device is not a logical unit of the helper's --simulate configuration (or the LUN is gone)",
    );
  });

  it('a device that does not open', async () => {
    const r = await runCli(['check', '--socket', socket, '--device', join(dir, 'missing.img')]);
    expect(r.code).toBe(1);
    expect(lines(r.stdout).at(-1)).toMatch(/^FAIL {2}device: cannot open .*missing\.img: ENOENT.*\. Hint: check the path/);
  });

  it.runIf(isRoot)('a user without write permission on the socket is told so, and how to fix it', async () => {
    if (!requireTool('/usr/bin/setpriv', 'util-linux')) return;
    const r = await runCli(['check', '--socket', socket], asNobody);
    expect(r.code).toBe(1);
    expect(lines(r.stdout)).toEqual([
      `ok    socket: ${socket} is a socket`,
      expect.stringMatching(
        /^FAIL {2}permissions: owner root:root, mode 0600; uid 65534 \(nobody\) cannot connect \(no write permission\)\. Hint: run the client as a member of group root .*--socket-group 0 --socket-mode 0660/,
      ),
    ]);
  });
});

describe('pr-helper check with a group-writable socket, as another uid', () => {
  it.runIf(isRoot)('passes every check when the mode lets the user in', async () => {
    if (!requireTool('/usr/bin/setpriv', 'util-linux')) return;
    const socket = join(dir, 'open.sock');
    const daemon = await startDaemon(socket, ['--simulate', config, '--socket-mode', '0666']);
    try {
      const r = await runCli(['check', '--socket', socket, '--device', image], asNobody);
      expect(r.code).toBe(0);
      expect(lines(r.stdout)[1]).toMatch(/^ok {4}permissions: owner root:root, mode 0666; uid 65534 \(nobody\) may connect \(other\)$/);
    } finally {
      await daemon.stop();
    }
  });
});

describe('pr-helper check failures before the helper', () => {
  it('no socket at the path', async () => {
    const socket = join(dir, 'absent.sock');
    const r = await runCli(['check', '--socket', socket]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(
      `FAIL  socket: cannot stat ${socket}: ENOENT: no such file or directory, stat '${socket}'. Hint: start the helper (systemctl start pr-helper.socket, or pr-helper -k ${socket}), or pass the path the helper was started with (-k)\n`,
    );
  });

  it('a regular file at the path', async () => {
    const r = await runCli(['check', '--socket', config, '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({
      ok: false,
      checks: [
        {
          name: 'socket',
          ok: false,
          detail: `${config} is a regular file, not a socket`,
          hint: 'pass the helper socket with --socket (a PR helper socket is created by pr-helper -k PATH or by pr-helper.socket)',
        },
      ],
    });
  });

  it('a stale socket nobody listens on', async () => {
    const socket = join(dir, 'stale.sock');
    // Closing a listener without unlinking its path leaves the inode behind, as a killed daemon does.
    closeSync(native.listenUnix(socket, 1, 0o600, -1));
    const r = await runCli(['check', '--socket', socket]);
    expect(r.code).toBe(1);
    expect(lines(r.stdout).at(-1)).toMatch(
      new RegExp(`^FAIL {2}handshake: connect failed: .*ECONNREFUSED.*\\. Hint: nothing listens on ${socket} \\(stale socket of a stopped helper\\?\\)$`),
    );
  });

  it('a helper that refuses this peer (--allow-uid) closes before the handshake', async () => {
    const socket = join(dir, 'picky.sock');
    // Not startDaemon: it waits for a handshake, which this daemon never sends us.
    const proc = spawn(process.execPath, [DAEMON_ENTRY, '-k', socket, '--simulate', config, '--allow-uid', '4242'], { stdio: 'ignore' });
    try {
      await waitFor(() => existsSync(socket), 10_000, 20);
      const r = await runCli(['check', '--socket', socket]);
      expect(r.code).toBe(1);
      expect(lines(r.stdout).at(-1)).toBe(
        "FAIL  handshake: the connection was closed before the handshake. Hint: pr-helper closes connections from peers outside --allow-uid/--allow-gid and beyond --max-connections (see the helper's log); otherwise another program that is not a PR helper answers",
      );
    } finally {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    }
  });
});

describe('pr-helper check against programs that are not a PR helper', () => {
  let server: Server | null = null;
  const sockets: Socket[] = [];

  afterEach(async () => {
    sockets.splice(0).forEach((s) => s.destroy());
    if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = null;
  });

  async function listen(name: string, onConnection: (s: Socket) => void): Promise<string> {
    const path = join(dir, name);
    server = createServer((s) => {
      sockets.push(s);
      s.on('error', () => {});
      onConnection(s);
    });
    await new Promise<void>((resolve) => server!.listen(path, resolve));
    return path;
  }

  it('a server that greets with something else', async () => {
    const socket = await listen('ssh.sock', (s) => s.write('SSH-2.0-OpenSSH\r\n'));
    const r = await runCli(['check', '--socket', socket]);
    expect(r.code).toBe(1);
    expect(lines(r.stdout).at(-1)).toBe(
      "FAIL  handshake: another program answers but is not a PR helper: it sent 53 53 48 2d, a PR helper sends 00 00 00 00. Hint: this socket belongs to another service: point --socket (and QEMU's pr-manager-helper path=) at pr-helper's socket",
    );
  });

  it('a server that waits for the client to speak first', async () => {
    const socket = await listen('http.sock', () => {});
    const r = await runCli(['check', '--socket', socket, '--timeout', '300']);
    expect(r.code).toBe(1);
    expect(lines(r.stdout).at(-1)).toMatch(
      /^FAIL {2}handshake: another program answers but is not a PR helper: it sent no handshake within 300 ms/,
    );
  });

  it('a server that sends the right 4 bytes but then talks on', async () => {
    const socket = await listen('chatty.sock', (s) => s.write(Buffer.from('00000000deadbeef', 'hex')));
    const r = await runCli(['check', '--socket', socket]);
    expect(r.code).toBe(1);
    expect(lines(r.stdout).at(-1)).toMatch(/^FAIL {2}handshake: another program answers but is not a PR helper: after the handshake it kept talking/);
  });

  it('a server that hangs up at once', async () => {
    const socket = await listen('rude.sock', (s) => s.end());
    const r = await runCli(['check', '--socket', socket]);
    expect(r.code).toBe(1);
    expect(lines(r.stdout).at(-1)).toMatch(/^FAIL {2}handshake: the connection was closed before the handshake\. Hint: pr-helper closes connections from peers outside --allow-uid/);
  });
});

describe('check usage', () => {
  it('an unknown option is one line and exit status 1', async () => {
    expect(await runCli(['check', '--frob'])).toEqual({ code: 1, stdout: '', stderr: "pr-helper check: unknown option '--frob'; see 'pr-helper check --help'\n" });
  });

  it('--help', async () => {
    const r = await runCli(['check', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Exit status: 0 when every check passes, 1 otherwise');
  });
});

describe('socketWriteAccess / permissionHint', () => {
  const socket = { uid: 0, gid: 107, mode: 0o140660 };

  it.each([
    [{ uid: 0, gid: 0, groups: [] }, { allowed: true, via: 'root' }],
    [{ uid: 1000, gid: 1000, groups: [107] }, { allowed: true, via: 'group' }],
    [{ uid: 1000, gid: 107, groups: [] }, { allowed: true, via: 'group' }],
    [{ uid: 1000, gid: 1000, groups: [24] }, { allowed: false, via: 'other' }],
  ])('mode 0660 root:kvm, %j', (who, verdict) => {
    expect(socketWriteAccess(socket, who)).toEqual(verdict);
  });

  it('the owner class decides for the owner, even when group or other would allow', () => {
    expect(socketWriteAccess({ uid: 1000, gid: 1000, mode: 0o140466 }, { uid: 1000, gid: 1000, groups: [] })).toEqual({ allowed: false, via: 'owner' });
  });

  it('hints', () => {
    expect(permissionHint(socket, { uid: 1000, gid: 1000, groups: [] }, 'kvm')).toBe(
      'run the client as a member of group kvm with group write on the socket (pr-helper --socket-group 107 --socket-mode 0660, or SocketGroup=/SocketMode=0660 in pr-helper.socket), or allow uid 1000 another way',
    );
    expect(permissionHint({ uid: 1000, gid: 1000, mode: 0o140400 }, { uid: 1000, gid: 1000, groups: [] }, 'x')).toMatch(/owner lacks write permission/);
    expect(permissionHint(socket, { uid: 1000, gid: 107, groups: [] }, 'kvm')).toMatch(/ACLs/);
  });
});
