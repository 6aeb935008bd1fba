// The log can never hurt the daemon. libvirt gives a managed helper a pipe
// as stderr and closes its end once the socket exists (qemuProcessStartManagedPRDaemon);
// a supervisor may also stop reading. Either way the daemon must keep
// serving: a stalled reader costs log lines (dropped and counted), a closed
// one costs nothing, and the socket is removed on the way out.
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PrInAction } from '../../src/scsi/pr-codes.js';
import { prInCdb } from '../fixtures/scsi-bytes.js';
import { FdStream } from '../../src/io/fd-stream.js';
import * as native from '../../src/native/binding.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { createFifo, readAvailable } from '../helpers/fifo.js';

const CONNECTIONS = 5000;
const CONCURRENCY = 8;
/** A connection that gets no reply in this time means the daemon stopped serving. */
const STUCK_MS = 5000;

const dir = mkdtempSync(join(tmpdir(), 'pr-log-stall-'));
const disk = join(dir, 'disk.img');
writeFileSync(disk, Buffer.alloc(512));
const diskFd = openSync(disk, 'r+');
const readKeys = prInCdb(PrInAction.READ_KEYS, 8192);
afterAll(() => {
  closeSync(diskFd);
  rmSync(dir, { recursive: true, force: true });
});

async function readExact(stream: FdStream, length: number): Promise<Buffer | null> {
  const parts: Buffer[] = [];
  let got = 0;
  while (got < length) {
    const chunk = await stream.read(length - got);
    if (!chunk) return null;
    chunk.fds.forEach((fd) => closeSync(fd));
    parts.push(Buffer.from(chunk.data));
    got += chunk.data.length;
  }
  return Buffer.concat(parts);
}

/** One QEMU-like connection: handshake, READ KEYS, reply; false if it did not complete in STUCK_MS. */
async function oneRound(socket: string): Promise<boolean> {
  const stream = new FdStream(native.connectUnix(socket));
  const timer = setTimeout(() => stream.close(), STUCK_MS);
  try {
    if (!(await readExact(stream, 4))) return false;
    await stream.write(Buffer.alloc(4));
    await stream.write(readKeys, [diskFd]);
    const reply = await readExact(stream, 104);
    return reply !== null && reply.readInt32BE(0) === 0;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    stream.close();
  }
}

/** Runs `total` connections, CONCURRENCY at a time; resolves with how many completed before the first stuck one. */
async function churn(socket: string, total: number): Promise<number> {
  let started = 0;
  let completed = 0;
  let stuck = false;
  const worker = async (): Promise<void> => {
    while (!stuck && started < total) {
      started++;
      if (await oneRound(socket)) completed++;
      else stuck = true;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return completed;
}

/**
 * Every way the daemon formats lines: --log-format json and pretty, and the
 * journald form (chosen when JOURNAL_STREAM names the daemon's stderr).
 */
const FORMATS: Array<[string, string[], (journalStream: string) => Record<string, string>]> = [
  ['json', ['--log-format', 'json'], () => ({})],
  ['pretty', ['--log-format', 'pretty'], () => ({})],
  ['journald', [], (journalStream) => ({ JOURNAL_STREAM: journalStream })],
];

describe.each(FORMATS)('log format %s', (format, formatArgs, envFor) => {
  // -v: a line per request on top of the connection lines, so that the pipe
  // (64 KiB) fills within the first few hundred connections.
  const args = ['--simulate', '-v', ...formatArgs];

  it(`stderr a pipe that is never read: ${CONNECTIONS} connections served, lines dropped and counted once the reader is back`, async () => {
    const { readFd, writeFd, journalStream } = createFifo(dir, `never-read-${format}`);
    let daemon: RunningDaemon | null = null;
    try {
      daemon = await startDaemon(join(dir, `never-read-${format}.sock`), args, { stderrFd: writeFd, env: envFor(journalStream) });
      closeSync(writeFd);
      expect(await churn(daemon.socket, CONNECTIONS)).toBe(CONNECTIONS);

      // The reader comes back: what was queued arrives, then one line that
      // says how many were lost in between.
      let log = '';
      const deadline = Date.now() + 10_000;
      while (!/log lines dropped/.test(log) && Date.now() < deadline) {
        log += readAvailable(readFd);
        await new Promise((r) => setTimeout(r, 20));
      }
      const summary = log.split('\n').find((l) => l.includes('log lines dropped'));
      expect(summary).toBeDefined();
      if (format === 'journald') expect(summary).toMatch(/^<4>WARN /);
      const dropped = Number(/dropped[=":]+(\d+)/.exec(summary!)?.[1]);
      // 5000 connections at -v are two lines each at least; far more than the
      // pipe and the bounded queue hold, so most of them are gone.
      expect(dropped).toBeGreaterThan(CONNECTIONS);
      expect(await oneRound(daemon.socket)).toBe(true);
      expect(await daemon.stop()).toBe(0);
      expect(existsSync(daemon.socket)).toBe(false);
    } finally {
      if (daemon?.proc.exitCode === null) daemon.proc.kill('SIGKILL');
      closeSync(readFd);
    }
  }, 120_000);

  it(`stderr a pipe whose reader has gone (EPIPE): ${CONNECTIONS} connections served, clean exit, no stale socket`, async () => {
    const { readFd, writeFd, journalStream } = createFifo(dir, `closed-${format}`);
    let daemon: RunningDaemon | null = null;
    try {
      daemon = await startDaemon(join(dir, `closed-${format}.sock`), args, { stderrFd: writeFd, env: envFor(journalStream) });
      closeSync(writeFd);
      // What libvirt does once the socket has appeared (VIR_FORCE_CLOSE(errfd)).
      closeSync(readFd);
      expect(await churn(daemon.socket, CONNECTIONS)).toBe(CONNECTIONS);
      expect(daemon.proc.exitCode).toBeNull();
      expect(await daemon.stop()).toBe(0);
      expect(existsSync(daemon.socket)).toBe(false);
    } finally {
      if (daemon?.proc.exitCode === null) daemon.proc.kill('SIGKILL');
    }
  }, 120_000);

});

// JOURNAL_STREAM cannot name a socketpair before the child exists, so the
// journald form is covered by the pipe cases above.
describe.each(['json', 'pretty'])('log format %s', (format) => {
  it(`stderr a stream socket whose reader has gone (a stopped journald or supervisor): ${CONNECTIONS} connections served, clean exit`, async () => {
    // Node hands children a socketpair for 'pipe'; journald's stream is a socket too.
    const daemon = await startDaemon(join(dir, `socket-${format}.sock`), ['--simulate', '-v', '--log-format', format]);
    try {
      daemon.proc.stderr!.destroy();
      expect(await churn(daemon.socket, CONNECTIONS)).toBe(CONNECTIONS);
      expect(daemon.proc.exitCode).toBeNull();
      expect(await daemon.stop()).toBe(0);
      expect(existsSync(daemon.socket)).toBe(false);
    } finally {
      if (daemon.proc.exitCode === null) daemon.proc.kill('SIGKILL');
    }
  }, 120_000);
});
