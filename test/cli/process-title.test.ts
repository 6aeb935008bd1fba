/**
 * pidof, pgrep -x and ps find pr-helper by name in every mode: comm (what
 * prctl PR_SET_NAME sets) and the command line say pr-helper, not node.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAEMON_ENTRY, startDaemon } from '../helpers/daemon.js';

const scratch = mkdtempSync(join(tmpdir(), 'prh-title-'));
/** Accepts and never answers, so client and check wait for the handshake long enough to be looked at. */
const SILENT = join(scratch, 'silent.sock');
let silent: Server;
const peers: Socket[] = [];

beforeAll(async () => {
  silent = createServer((peer) => peers.push(peer));
  await new Promise<void>((resolve) => silent.listen(SILENT, resolve));
});
afterAll(async () => {
  peers.forEach((p) => p.destroy());
  await new Promise((resolve) => silent.close(resolve));
  rmSync(scratch, { recursive: true, force: true });
});

function identity(pid: number) {
  return { comm: readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), argv0: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] };
}

/** The identity once main.ts has run (node starts as "node"), waiting for the process to get there. */
async function settledIdentity(child: ChildProcess): Promise<{ comm: string; argv0: string | undefined }> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const now = identity(child.pid!);
    if (now.comm !== 'node' || Date.now() > deadline) return now;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('process title', () => {
  it('the daemon is pr-helper', async () => {
    const daemon = await startDaemon(join(scratch, 'd.sock'), ['--simulate']);
    try {
      expect(identity(daemon.proc.pid!)).toEqual({ comm: 'pr-helper', argv0: 'pr-helper' });
    } finally {
      await daemon.stop();
    }
  });

  for (const [mode, args] of [
    ['check', ['check', '--socket', SILENT, '--timeout', '20000']],
    ['client', ['client', '--socket', SILENT, '--device', '/dev/null', 'read-keys']],
  ] as const) {
    it(`${mode} is pr-helper`, async () => {
      const child = spawn(process.execPath, [DAEMON_ENTRY, ...args], { stdio: 'ignore' });
      try {
        expect(await settledIdentity(child)).toEqual({ comm: 'pr-helper', argv0: 'pr-helper' });
      } finally {
        child.kill('SIGKILL');
      }
    });
  }
});
