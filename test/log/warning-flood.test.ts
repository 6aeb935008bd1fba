// A peer that repeats the same mistake must not turn the log into a disk
// filler: identical warnings per peer are let through a few at a time, the
// rest counted and summarised.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HelperClient } from '../../src/client/client.js';
import { DAEMON_ENTRY, startDaemon } from '../helpers/daemon.js';

const ATTEMPTS = 5000;
const dir = mkdtempSync(join(tmpdir(), 'pr-log-flood-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Another process (so that its lines can be told apart by pid) connects and
 * waits for the daemon to close, `count` times; resolves with its pid.
 */
async function refusedConnects(socket: string, count: number): Promise<number> {
  const script = 'import socket, sys\nfor _ in range(int(sys.argv[2])):\n    s = socket.socket(socket.AF_UNIX)\n    s.connect(sys.argv[1])\n    s.recv(4)\n    s.close()\n';
  const child = spawn('/usr/bin/python3', ['-c', script, socket, String(count)], { stdio: ['ignore', 'ignore', 'inherit'] });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  expect(code).toBe(0);
  return child.pid!;
}

/** Lines about `pid` that contain `text`: the ones written, and the count the summaries say were held back. */
function tally(stderr: string, text: string, pid: number): { shown: number; suppressed: number } {
  const mine = stderr
    .split('\n')
    .filter((l) => l.includes(text))
    .map((l) => JSON.parse(l) as { peer: { pid: number }; suppressed?: number })
    .filter((l) => l.peer.pid === pid);
  return {
    shown: mine.filter((l) => l.suppressed === undefined).length,
    suppressed: mine.reduce((sum, l) => sum + (l.suppressed ?? 0), 0),
  };
}

describe('repeated warnings from one peer', () => {
  it(`--max-connections: ${ATTEMPTS} refused connects give a few lines plus a count`, async () => {
    const daemon = await startDaemon(join(dir, 'max.sock'), ['--simulate', '--max-connections', '1']);
    const holder = await HelperClient.connect(daemon.socket);
    try {
      const pid = await refusedConnects(daemon.socket, ATTEMPTS);
      holder.close();
      // The summary comes at the latest when the daemon stops.
      expect(await daemon.stop()).toBe(0);
      const { shown, suppressed } = tally(daemon.stderr(), 'connection limit reached', pid);
      expect(shown).toBe(10);
      expect(shown + suppressed).toBe(ATTEMPTS);
      expect(daemon.stderr().length).toBeLessThan(20_000);
    } finally {
      holder.close();
    }
  }, 60_000);

  it(`--allow-uid: ${ATTEMPTS} connects of a refused peer give a few lines plus a count`, async () => {
    // The test process (any uid but 4242) is the refused peer, so the start-up
    // cannot be probed with a handshake: wait for the log line instead.
    const socket = join(dir, 'allow.sock');
    const proc = spawn(process.execPath, [DAEMON_ENTRY, '-k', socket, '--simulate', '--allow-uid', '4242'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | string>((res) => proc.on('exit', (code, signal) => res(code ?? signal ?? -1)));
    try {
      const deadline = Date.now() + 30_000;
      while (!stderr.includes('accepting connections') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const pid = await refusedConnects(socket, ATTEMPTS);
      proc.kill('SIGTERM');
      expect(await exited).toBe(0);
      const { shown, suppressed } = tally(stderr, 'peer not in the allow list', pid);
      expect(shown).toBe(10);
      expect(shown + suppressed).toBe(ATTEMPTS);
      expect(stderr.length).toBeLessThan(20_000);
    } finally {
      if (proc.exitCode === null) proc.kill('SIGKILL');
    }
  }, 60_000);
});
