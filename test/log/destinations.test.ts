// Where the log goes: a file (--log-file or QEMU's -T file=) reopened on
// SIGUSR2, journald's stream with syslog priorities, or stderr.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HelperClient } from '../../src/client/client.js';
import { DAEMON_ENTRY, startDaemon } from '../helpers/daemon.js';
import { createFifo, readAvailable } from '../helpers/fifo.js';
import { RawPeer } from '../helpers/raw-peer.js';

const dir = mkdtempSync(join(tmpdir(), 'pr-log-dest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function until(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const fileLines = (path: string): Array<Record<string, unknown>> =>
  existsSync(path)
    ? readFileSync(path, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
    : [];

async function connectOnce(socket: string): Promise<void> {
  (await HelperClient.connect(socket)).close();
}

describe('--log-file', () => {
  it('appends JSON lines to the file, not stderr; SIGUSR2 reopens it under its name after a rotation', async () => {
    const log = join(dir, 'pr.log');
    const daemon = await startDaemon(join(dir, 'file.sock'), ['--simulate', '--log-file', log]);
    try {
      await until('the start-up line in the file', () => fileLines(log).some((l) => l['msg'] === 'accepting connections'));
      expect(daemon.stderr()).toBe('');

      // The start-up probe's connection is logged, so nothing is still on its way to the old file.
      await until('the probe connection in the file', () => fileLines(log).some((l) => l['msg'] === 'connection closed'));
      const before = fileLines(log).length;
      renameSync(log, `${log}.1`);
      daemon.proc.kill('SIGUSR2');
      await until('the reopened file', () => fileLines(log).some((l) => l['msg'] === 'log file reopened'));
      await connectOnce(daemon.socket);
      await until('the connection in the new file', () => fileLines(log).some((l) => l['msg'] === 'connection closed'));
      // The rotated file got nothing after the rotation.
      expect(fileLines(`${log}.1`)).toHaveLength(before);
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
    expect(fileLines(log).at(-1)).toMatchObject({ msg: 'stopped' });
  });

  it("-T file=PATH (QEMU's trace file) is honoured the same way", async () => {
    const log = join(dir, 'trace.log');
    const daemon = await startDaemon(join(dir, 'trace.sock'), ['--simulate', '-T', 'pr_helper_request,file=' + log]);
    try {
      await connectOnce(daemon.socket);
      await until('the connection in the file', () => fileLines(log).some((l) => l['msg'] === 'connection closed'));
      expect(daemon.stderr()).toBe('');
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });

  it('a log file that cannot be opened stops the start with one line', () => {
    const socket = join(dir, 'nofile.sock');
    const run = spawnSync(process.execPath, [DAEMON_ENTRY, '-k', socket, '--simulate', '--log-file', join(dir, 'missing', 'pr.log')], { encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stderr).toBe(`pr-helper: --log-file: ENOENT: no such file or directory, open '${join(dir, 'missing', 'pr.log')}'\n`);
    expect(existsSync(socket)).toBe(false);
  });

  it('SIGUSR2 without a log file is harmless', async () => {
    const daemon = await startDaemon(join(dir, 'usr2.sock'), ['--simulate']);
    daemon.proc.kill('SIGUSR2');
    await until('the answer to SIGUSR2', () => daemon.stderr().includes('no --log-file to reopen'));
    await connectOnce(daemon.socket);
    expect(await daemon.stop()).toBe(0);
  });
});

describe('journald', () => {
  it('JOURNAL_STREAM naming stderr: text lines with <N> syslog priorities, no timestamp (journald adds it)', async () => {
    const { readFd, writeFd, journalStream } = createFifo(dir, 'journal');
    const daemon = await startDaemon(join(dir, 'journal.sock'), ['--simulate', '--max-connections', '1'], { stderrFd: writeFd, env: { JOURNAL_STREAM: journalStream } });
    closeSync(writeFd);
    let text = '';
    try {
      const holder = await HelperClient.connect(daemon.socket);
      const refused = new RawPeer(daemon.socket);
      await refused.observe();
      refused.close();
      holder.close();
      await until('the refusal', () => (text += readAvailable(readFd)).includes('connection limit reached'));
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
    text += readAvailable(readFd);
    closeSync(readFd);
    const lines = text.split('\n').filter(Boolean);
    expect(lines.find((l) => l.includes('accepting connections'))).toMatch(/^<6>INFO  accepting connections socket=\S+ backend=simulated /);
    expect(lines.find((l) => l.includes('connection limit reached'))).toMatch(/^<4>WARN  connection limit reached; connection closed conn=\d+ peer=\{"pid":\d+,/);
    expect(lines.every((l) => /^<[2-7]>[A-Z]+ +\S/.test(l))).toBe(true);
  });

  it('with --log-format json the lines stay JSON behind the prefix', async () => {
    const { readFd, writeFd, journalStream } = createFifo(dir, 'journal-json');
    const daemon = await startDaemon(join(dir, 'journal-json.sock'), ['--simulate', '--log-format', 'json'], { stderrFd: writeFd, env: { JOURNAL_STREAM: journalStream } });
    closeSync(writeFd);
    expect(await daemon.stop()).toBe(0);
    const lines = readAvailable(readFd).split('\n').filter(Boolean);
    closeSync(readFd);
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(JSON.parse(l.replace(/^<6>/, ''))).toMatchObject({ level: 30 });
  });

  it('JOURNAL_STREAM inherited but naming another stream: plain JSON', async () => {
    const daemon = await startDaemon(join(dir, 'not-journal.sock'), ['--simulate'], { env: { JOURNAL_STREAM: '1:1' } });
    expect(await daemon.stop()).toBe(0);
    const lines = daemon.stderr().split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(JSON.parse(l)).toHaveProperty('msg');
  });
});
