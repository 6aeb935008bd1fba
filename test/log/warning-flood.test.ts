// A peer that repeats the same mistake must not turn the log into a disk
// filler: identical warnings per peer are let through a few at a time, the
// rest counted and summarised.
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HelperClient } from '../../src/client/client.js';
import * as native from '../../src/native/binding.js';
import { DAEMON_ENTRY, startDaemon } from '../helpers/daemon.js';

const ATTEMPTS = 5000;
const dir = mkdtempSync(join(tmpdir(), 'pr-log-flood-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Connects and hangs up `count` times, waiting each time for the daemon to close the connection. */
async function refusedConnects(socket: string, count: number): Promise<void> {
  const buf = Buffer.alloc(4);
  for (let i = 0; i < count; i++) {
    const fd = native.connectUnix(socket);
    try {
      // The daemon closes a refused connection without a byte: wait for the end of stream.
      for (;;) {
        const got = native.recvmsg(fd, buf, 0, 4);
        if (got !== null) break;
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      closeSync(fd);
    }
  }
}

function lines(stderr: string, text: string): Array<Record<string, unknown>> {
  return stderr
    .split('\n')
    .filter((l) => l.includes(text))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The number of lines a summary says were held back, summed over all summaries. */
function suppressed(stderr: string, text: string): number {
  return lines(stderr, text)
    .map((l) => Number(l['suppressed'] ?? 0))
    .reduce((a, b) => a + b, 0);
}

describe('repeated warnings from one peer', () => {
  it(`--max-connections: ${ATTEMPTS} refused connects give a few lines plus a count`, async () => {
    const daemon = await startDaemon(join(dir, 'max.sock'), ['--simulate', '--max-connections', '1']);
    const holder = await HelperClient.connect(daemon.socket);
    try {
      await refusedConnects(daemon.socket, ATTEMPTS);
      holder.close();
      // The summary comes at the latest when the daemon stops.
      expect(await daemon.stop()).toBe(0);
      const text = 'connection limit reached';
      const shown = lines(daemon.stderr(), text).filter((l) => l['suppressed'] === undefined).length;
      expect(shown).toBeGreaterThan(0);
      expect(shown).toBeLessThanOrEqual(20);
      expect(shown + suppressed(daemon.stderr(), text)).toBe(ATTEMPTS);
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
      await refusedConnects(socket, ATTEMPTS);
      proc.kill('SIGTERM');
      expect(await exited).toBe(0);
      const text = 'peer not in the allow list';
      const shown = lines(stderr, text).filter((l) => l['suppressed'] === undefined).length;
      expect(shown).toBeGreaterThan(0);
      expect(shown).toBeLessThanOrEqual(20);
      expect(shown + suppressed(stderr, text)).toBe(ATTEMPTS);
      expect(stderr.length).toBeLessThan(20_000);
    } finally {
      if (proc.exitCode === null) proc.kill('SIGKILL');
    }
  }, 60_000);
});
