/**
 * The daemon's soft RLIMIT_NOFILE follows its caps instead of the hard limit
 * Node raises it to (security review: 20000 here, 524288 under systemd; the
 * original keeps 1024). Read from /proc/PID/limits of a running daemon.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { descriptorBudget } from '../../src/daemon/file-limit.js';
import { DAEMON_ENTRY, requireTool, startDaemon, startProcess } from '../helpers/daemon.js';

const dir = mkdtempSync(join(tmpdir(), 'prh-nofile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function openFiles(pid: number): { soft: number; hard: number } {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'))!;
  const [soft, hard] = line.split(/\s{2,}/).slice(1, 3).map(Number);
  return { soft: soft!, hard: hard! };
}

describe('descriptorBudget', () => {
  it('is two per connection plus one per SG_IO command plus 256, and never below 1024', () => {
    expect(descriptorBudget({ maxConnections: 1024, maxSgioCommands: 256 })).toBe(2048 + 256 + 256);
    expect(descriptorBudget({ maxConnections: 5000, maxSgioCommands: 4096 })).toBe(10_000 + 4096 + 256);
    expect(descriptorBudget({ maxConnections: 10, maxSgioCommands: 1 })).toBe(1024);
  });
});

describe('the running daemon', () => {
  it('lowers the soft limit Node raised to its budget with the default caps, keeping the hard limit', async () => {
    const before = openFiles(process.pid);
    const daemon = await startDaemon(join(dir, 'a.sock'), ['--simulate']);
    try {
      expect(openFiles(daemon.proc.pid!)).toEqual({ soft: Math.min(before.hard, 2560), hard: before.hard });
    } finally {
      await daemon.stop();
    }
  });

  it('follows --max-connections and --max-sgio-commands', async () => {
    const daemon = await startDaemon(join(dir, 'b.sock'), ['--simulate', '--max-connections', '3000', '--max-sgio-commands', '100']);
    try {
      expect(openFiles(daemon.proc.pid!).soft).toBe(Math.min(openFiles(process.pid).hard, 6000 + 100 + 256));
    } finally {
      await daemon.stop();
    }
  });

  it.runIf(requireTool('/usr/bin/prlimit', 'util-linux'))('stays at a hard limit below its budget, and still serves', async () => {
    const socket = join(dir, 'c.sock');
    const daemon = await startProcess('/usr/bin/prlimit', ['--nofile=1500:1500', process.execPath, DAEMON_ENTRY, '-k', socket, '--simulate'], socket);
    try {
      expect(openFiles(daemon.proc.pid!)).toEqual({ soft: 1500, hard: 1500 });
    } finally {
      await daemon.stop();
    }
  });
});
