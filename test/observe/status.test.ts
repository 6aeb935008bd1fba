// `pr-helper status` against a running daemon: a VM-like peer whose command
// hangs on a fake-target device shows up with its VM, the device and the age
// of the command; only root and the daemon's user may ask.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatDuration, formatStatus, type StatusDocument } from '../../src/observe/status.js';
import { DAEMON_ENTRY, startDaemon } from '../helpers/daemon.js';
import { REPO_ROOT } from '../helpers/repo-root.js';
import { createFakeTargetDir, FakeDevice, fakeTargetEnv } from '../helpers/fake-target.js';

const asRoot = process.geteuid?.() === 0;
if (!asRoot) console.warn('SKIPPING: the SG_IO backend and setpriv need root');

function status(socket: string, ...args: string[]): { status: number; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [DAEMON_ENTRY, 'status', '-k', socket, ...args], { encoding: 'utf8' });
  return { status: run.status ?? -1, stdout: run.stdout, stderr: run.stderr };
}

describe('status document in text', () => {
  it('formats durations', () => {
    expect([0.25, 59.94, 61, 3725, 90061].map(formatDuration)).toEqual(['0.3 s', '59.9 s', '1m 1s', '1h 2m 5s', '1d 1h 1m 1s']);
  });

  it('one line each for the daemon, the counters and in-flight commands, then a table of connections', () => {
    const doc: StatusDocument = {
      pid: 42,
      startedAt: '2024-01-02T03:04:05.000Z',
      uptimeSeconds: 3725,
      backend: 'sgio',
      socket: '/run/qemu-pr-helper.sock',
      log: 'journald (stderr)',
      metrics: 'http://127.0.0.1:9100/metrics',
      counters: { requests: 12, failures: 1, reservationConflicts: 2, sgioErrors: 1, timeouts: 0, connectionsAccepted: 3, refusedAllowList: 4, refusedConnectionLimit: 0, logLinesDropped: 5 },
      inFlight: { count: 1, oldestSeconds: 12.34 },
      connections: [
        { conn: 3, peer: { pid: 2345, uid: 107, gid: 107 }, vm: 'web', exe: 'qemu-system-x86_64', openedAt: '2024-01-02T03:05:00.000Z', requests: 10, executing: { op: 'PR OUT', action: 'PREEMPT', seconds: 12.34, dev: 'sdh', devno: '8:112' } },
        { conn: 7, peer: { pid: 99, uid: 0, gid: 0 }, exe: 'node', openedAt: '2024-01-02T04:00:00.000Z', requests: 2, executing: null },
      ],
    };
    expect(formatStatus(doc)).toBe(
      [
        'pr-helper pid 42, up 1h 2m 5s (since 2024-01-02T03:04:05.000Z)',
        'backend sgio; socket /run/qemu-pr-helper.sock; log journald (stderr); metrics http://127.0.0.1:9100/metrics',
        'requests 12: failures 1, reservation conflicts 2, SG_IO errors 1, timeouts 0',
        'connections 2 open, 3 accepted, refused 4 by the allow list and 0 by the limit; log lines dropped 5',
        'in flight 1, the oldest for 12.3 s',
        '',
        'CONN  PID   UID  VM   PROGRAM             REQUESTS  EXECUTING',
        '3     2345  107  web  qemu-system-x86_64  10        PR OUT PREEMPT on sdh (8:112) for 12.3 s',
        '7     99    0    -    node                2         -',
        '',
      ].join('\n'),
    );
  });
});

describe.skipIf(!asRoot)('pr-helper status', () => {
  it('shows a VM whose command hangs on a device, with the device and the age; --json the same', async () => {
    const devDir = createFakeTargetDir('status-dev-');
    const sockDir = mkdtempSync(join(tmpdir(), 'status-'));
    const hung = new FakeDevice(devDir, 'hung');
    hung.script([{ delayMs: 4000 }]);
    const daemon = await startDaemon(join(sockDir, 'helper.sock'), [], { env: fakeTargetEnv(devDir) });
    const vm = spawn(process.execPath, [join(REPO_ROOT, 'dist/test/helpers/qemu-like-peer.js'), daemon.socket, hung.path, '-name', 'guest=vmA,debug-threads=on'], { stdio: ['pipe', 'ignore', 'inherit'] });
    try {
      vm.stdin!.write(JSON.stringify({ in: 'READ_KEYS' }) + '\n');
      let doc: StatusDocument | null = null;
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        const answer = status(daemon.socket, '--json');
        expect(answer.status).toBe(0);
        doc = JSON.parse(answer.stdout) as StatusDocument;
        if ((doc.connections.find((c) => c.vm === 'vmA')?.executing?.seconds ?? 0) >= 0.5) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const mine = doc!.connections.find((c) => c.vm === 'vmA');
      expect(mine).toMatchObject({ vm: 'vmA', exe: 'node', peer: { pid: vm.pid }, executing: { op: 'PR IN', action: 'READ KEYS', file: hung.path } });
      expect(mine!.executing!.seconds).toBeGreaterThanOrEqual(0.5);
      expect(doc).toMatchObject({ backend: 'sgio', socket: daemon.socket, pid: daemon.proc.pid, inFlight: { count: 1 } });
      expect(doc!.inFlight.oldestSeconds).toBeGreaterThanOrEqual(0.5);

      const text = status(daemon.socket);
      expect(text.status).toBe(0);
      expect(text.stdout).toMatch(/^pr-helper pid \d+, up /);
      expect(text.stdout).toMatch(new RegExp(`\\n\\d+ +${vm.pid} +0 +vmA +node +1 +PR IN READ KEYS on ${hung.path} for \\d+\\.\\d s\\n`));
      expect(text.stdout).toMatch(/\nin flight 1, the oldest for \d+\.\d s\n/);
    } finally {
      vm.kill();
      expect(await daemon.stop()).toBe(0);
      rmSync(devDir, { recursive: true, force: true });
      rmSync(sockDir, { recursive: true, force: true });
    }
  }, 30_000);

  it('only root and the daemon user may ask, even when the socket mode would let others in', async () => {
    const sockDir = mkdtempSync(join(tmpdir(), 'status-perm-'));
    chmodSync(sockDir, 0o755);
    const daemon = await startDaemon(join(sockDir, 'helper.sock'), ['--simulate']);
    const asNobody = (): { status: number; stderr: string } => {
      const run = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, DAEMON_ENTRY, 'status', '-k', daemon.socket], { encoding: 'utf8' });
      return { status: run.status ?? -1, stderr: run.stderr };
    };
    try {
      expect(execFileSync('stat', ['-c', '%a %U', `${daemon.socket}.status`], { encoding: 'utf8' }).trim()).toBe('600 root');
      expect(asNobody()).toEqual({ status: 1, stderr: `pr-helper status: permission denied on ${daemon.socket}.status: only root and the user the daemon runs as may ask\n` });
      // Past the file mode, SO_PEERCRED still decides.
      chmodSync(`${daemon.socket}.status`, 0o666);
      expect(asNobody()).toEqual({ status: 1, stderr: `pr-helper status: ${daemon.socket}.status: the daemon closed the status socket without an answer (root or the daemon user only)\n` });
    } finally {
      expect(await daemon.stop()).toBe(0);
      rmSync(sockDir, { recursive: true, force: true });
    }
  });

  it('says where it looked when no daemon answers', () => {
    const missing = join(tmpdir(), 'no-such-helper.sock');
    expect(status(missing)).toEqual({ status: 1, stdout: '', stderr: `pr-helper status: no status socket at ${missing}.status: is pr-helper running? (a daemon started with -k SOCKET has SOCKET.status)\n` });
  });
});
