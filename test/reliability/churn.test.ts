// Connection churn: many short connections, many idle ones, and the
// --max-connections limit. Our daemon runs in SG_IO mode; requests go to
// /dev/null, so every reply is ABORTED COMMAND / I/O PROCESS TERMINATED
// (ENOTTY, pr-helper-protocol.md 2.4a).
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HelperClient, ProtocolError } from '../../src/client/client.js';
import { PrInAction } from '../../src/scsi/pr-codes.js';
import { prInCdb } from '../fixtures/scsi-bytes.js';
import * as native from '../../src/native/binding.js';
import { type RunningDaemon, startDaemon } from '../helpers/daemon.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { settledFdCount } from '../helpers/fds.js';
import { RawPeer } from '../helpers/raw-peer.js';
import { fdCountBackTo } from './fuzz-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'rel-churn-'));
const devNull = openSync('/dev/null', 'r+');
const readKeys = prInCdb(PrInAction.READ_KEYS, 8192);
// Fixed sense 0B/00/06, first 14 bytes (spec 2.4c).
const IO_PROCESS_TERMINATED = '70000b000000000a000000000006';

afterAll(() => {
  closeSync(devNull);
  rmSync(dir, { recursive: true, force: true });
});

/** RLIMIT_NOFILE of this process (soft limit): from /proc, as Node has no getrlimit. */
function openFileLimit(): number {
  const line = execFileSync('prlimit', ['--pid', String(process.pid), '--nofile', '--output', 'SOFT', '--noheadings'], { encoding: 'utf8' });
  return Number(line.trim());
}

/** Makes room for `needed` descriptors in this process (and the daemons it spawns later). */
function ensureFileLimit(needed: number): void {
  if (openFileLimit() >= needed) return;
  execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${needed}:${needed}`]);
}

async function expectServed(socket: string): Promise<void> {
  const client = await HelperClient.connect(socket);
  try {
    const reply = await client.execute(readKeys, devNull);
    expect(reply.status).toBe(2);
    expect(reply.sense.subarray(0, 14).toString('hex')).toBe(IO_PROCESS_TERMINATED);
  } finally {
    client.close();
  }
}

describe('connection churn', () => {
  let daemon: RunningDaemon;
  let baseline = 0;

  beforeAll(async () => {
    ensureFileLimit(4096);
    daemon = await startDaemon(join(dir, 'churn.sock'), ['-q', '--max-connections-per-uid', '2000']);
    await expectServed(daemon.socket);
    baseline = await settledFdCount(daemon.proc.pid!);
  });

  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
  });

  it('10,000 connect / handshake / close cycles leak nothing and leave the daemon serving', async () => {
    const rssBefore = Number(execFileSync('ps', ['-o', 'rss=', '-p', String(daemon.proc.pid)], { encoding: 'utf8' }).trim());
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < 10_000) {
        const i = next++;
        if (i % 10 === 0) {
          // Gone before the handshake: the server's handshake write or read meets a closed peer.
          closeSync(native.connectUnix(daemon.socket));
        } else if (i % 10 === 1) {
          const peer = new RawPeer(daemon.socket);
          await peer.waitForBytes(4);
          peer.close();
        } else {
          (await HelperClient.connect(daemon.socket)).close();
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    expect(daemon.proc.exitCode).toBeNull();
    expect(await fdCountBackTo(daemon.proc.pid!, baseline, 10_000)).toBe(baseline);
    await expectServed(daemon.socket);
    const rssAfter = Number(execFileSync('ps', ['-o', 'rss=', '-p', String(daemon.proc.pid)], { encoding: 'utf8' }).trim());
    // Loose: a per-connection leak of even 5 KiB would add ~50 MB here.
    expect(rssAfter - rssBefore).toBeLessThan(40_000);
    expect(daemon.stderr()).toBe('');
  }, 120_000);

  it('a peer that connects and hangs up as fast as it can: the daemon closes what it left before it accepts more, and still serves', async () => {
    // In its own process, so that it connects as fast as the daemon accepts.
    // An accept loop that drains the backlog before it yields lets the
    // connections the flooder has already left pile up unread (500 after 3 s
    // when this was found), until --max-connections refuses everyone.
    const concurrency = 64;
    const flooder = spawn(process.execPath, ['-e', `
      const net = require('node:net');
      const again = () => net.connect(process.argv[1]).on('connect', function () { this.destroy(); again(); }).on('error', again);
      for (let i = 0; i < ${concurrency}; i++) again();
    `, daemon.socket], { stdio: 'ignore' });
    const client = await HelperClient.connect(daemon.socket);
    let most = 0;
    try {
      for (let i = 0; i < 30; i++) {
        await sleep(100);
        most = Math.max(most, readdirSync(`/proc/${daemon.proc.pid}/fd`).length);
        expect((await client.execute(readKeys, devNull)).status, `request ${i} during the flood`).toBe(2);
      }
    } finally {
      flooder.kill('SIGKILL');
      client.close();
    }
    // The flooder's connections in flight, plus what one turn of accepts adds
    // before they are read; not a backlog that grows with time.
    expect(most).toBeLessThan(baseline + 3 * concurrency);
    expect(await fdCountBackTo(daemon.proc.pid!, baseline, 10_000)).toBe(baseline);
    expect(daemon.stderr()).toBe('');
  }, 120_000);

  it('1000 concurrent idle connections (half never handshake) do not stop others being served', async () => {
    const idle: Array<HelperClient | RawPeer> = [];
    try {
      for (let i = 0; i < 1000; i++) {
        if (i % 2 === 0) idle.push(await HelperClient.connect(daemon.socket));
        else idle.push(new RawPeer(daemon.socket));
      }
      const started = Date.now();
      await expectServed(daemon.socket);
      expect(Date.now() - started).toBeLessThan(2000);
      // One descriptor per connection in the daemon, and nothing more.
      expect(await fdCountBackTo(daemon.proc.pid!, baseline + 1000, 10_000)).toBe(baseline + 1000);
    } finally {
      idle.forEach((c) => c.close());
    }
    expect(await fdCountBackTo(daemon.proc.pid!, baseline, 10_000)).toBe(baseline);
    await expectServed(daemon.socket);
    expect(daemon.stderr()).toBe('');
  }, 120_000);
});

describe('descriptor exhaustion', () => {
  /** utime + stime of `pid`, in clock ticks. */
  const cpuTicks = (pid: number): number => {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(fields[11]) + Number(fields[12]);
  };

  it('EMFILE on accept: the reserve descriptor accepts and closes, no busy loop, no log flood; served again once descriptors free up', async () => {
    const daemon = await startDaemon(join(dir, 'emfile.sock'), ['-q']);
    const pid = daemon.proc.pid!;
    const peers: RawPeer[] = [];
    try {
      await sleep(100);
      const baseline = await settledFdCount(pid);
      // Room for exactly three more descriptors.
      execFileSync('prlimit', ['--pid', String(pid), `--nofile=${baseline + 3}:${baseline + 3}`]);
      const ticksBefore = cpuTicks(pid);
      for (let i = 0; i < 8; i++) peers.push(new RawPeer(daemon.socket));
      // Three (or four, if the start-up probe's descriptor was still counted) get in; the rest are closed at once.
      const shed = await Promise.all(peers.map((p) => p.observe(1500)));
      const served = peers.filter((_, i) => shed[i]!.received.length === 8);
      expect(served.length).toBeGreaterThanOrEqual(3);
      expect(shed.filter((o) => o.received.length === 0 && o.closedByServer).length).toBeGreaterThanOrEqual(4);
      await sleep(1000);
      const ticks = cpuTicks(pid) - ticksBefore;
      const lines = daemon.stderr().split('\n').filter(Boolean);
      // A daemon that retries accept() on every readiness event spins and floods the log.
      expect({ logLines: Math.min(lines.length, 1000), cpuTicks: Math.min(ticks, 1000) }).toEqual({
        logLines: Math.min(lines.length, 20),
        cpuTicks: Math.min(ticks, 30),
      });
      // Recovery: the served connections leave, new ones get their handshake.
      served.forEach((p) => p.close());
      const again = new RawPeer(daemon.socket);
      peers.push(again);
      expect((await again.waitForBytes(4, 3000)).length).toBe(4);
      expect(daemon.proc.exitCode).toBeNull();
    } finally {
      peers.forEach((p) => p.close());
      expect(await daemon.stop()).toBe(0);
    }
  }, 30_000);

  it('prlimit --nofile: an established client whose descriptor the kernel cannot install gets BUSY and stays connected', async () => {
    const daemon = await startDaemon(join(dir, 'ctrunc.sock'), ['-q']);
    const pid = daemon.proc.pid!;
    const flood: RawPeer[] = [];
    const client = await HelperClient.connect(daemon.socket);
    try {
      expect((await client.execute(readKeys, devNull)).status).toBe(2);
      await sleep(100);
      const baseline = await settledFdCount(pid);
      execFileSync('prlimit', ['--pid', String(pid), `--nofile=${baseline + 2}:${baseline + 2}`]);
      for (let i = 0; i < 6; i++) flood.push(new RawPeer(daemon.socket));
      await waitFor(() => flood.filter((p) => p.received().length === 4).length >= 2);
      // No descriptor is left for the one riding on this request: MSG_CTRUNC.
      const during = await client.execute(readKeys, devNull);
      expect(during.status).toBe(0x08);
      flood.forEach((p) => p.close());
      await fdCountBackTo(pid, baseline, 5000);
      const after = await client.execute(readKeys, devNull);
      expect({ status: after.status, sense: after.sense.subarray(0, 14).toString('hex') }).toEqual({ status: 2, sense: IO_PROCESS_TERMINATED });
      expect(daemon.stderr()).not.toContain('No file descriptor in request');
    } finally {
      client.close();
      flood.forEach((p) => p.close());
      expect(await daemon.stop()).toBe(0);
    }
  }, 30_000);
});

describe('--max-connections', () => {
  it('closes connection N+1 at once with a log line; existing ones unaffected; capacity returns', async () => {
    const daemon = await startDaemon(join(dir, 'max.sock'), ['--max-connections', '4']);
    try {
      // startDaemon's readiness probe used one connection; wait until it is gone.
      await sleep(100);
      const baseline = await settledFdCount(daemon.proc.pid!);
      const clients = await Promise.all(Array.from({ length: 4 }, () => HelperClient.connect(daemon.socket)));

      const logLines = (): string[] => daemon.stderr().split('\n').filter((l) => l.includes('connection limit reached'));
      expect(logLines()).toHaveLength(0);
      const extra = new RawPeer(daemon.socket);
      const seen = await extra.observe(3000);
      extra.close();
      // Closed immediately: not even the handshake bytes.
      expect(seen).toEqual({ received: '', closedByServer: true });
      expect(await waitFor(() => logLines().length === 1)).toBe(true);
      expect(JSON.parse(logLines()[0]!)).toMatchObject({ level: 40, max: 4, msg: 'connection limit reached; connection closed' });
      await expect(HelperClient.connect(daemon.socket)).rejects.toBeInstanceOf(ProtocolError);

      // The four existing connections keep working.
      for (const c of clients) expect((await c.execute(readKeys, devNull)).status).toBe(2);

      // One leaves: its slot is free again once the daemon has seen it go.
      clients.shift()!.close();
      let again: HelperClient | null = null;
      expect(
        await waitFor(async () => {
          try {
            again = await HelperClient.connect(daemon.socket);
            return true;
          } catch {
            return false;
          }
        }, 5000, 50),
      ).toBe(true);
      expect((await again!.execute(readKeys, devNull)).status).toBe(2);
      clients.push(again!);
      clients.forEach((c) => c.close());
      expect(await fdCountBackTo(daemon.proc.pid!, baseline, 5000)).toBe(baseline);
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  }, 60_000);
});

describe('per-uid cap and frame timeout', () => {
  it('--max-connections-per-uid: the peer uid\'s connection beyond the cap is closed at once with a log line', async () => {
    const daemon = await startDaemon(join(dir, 'peruid.sock'), ['--max-connections-per-uid', '2']);
    try {
      await sleep(100);
      const clients = await Promise.all([HelperClient.connect(daemon.socket), HelperClient.connect(daemon.socket)]);
      const extra = new RawPeer(daemon.socket);
      expect(await extra.observe(3000)).toEqual({ received: '', closedByServer: true });
      extra.close();
      expect(await waitFor(() => daemon.stderr().includes('connection limit of this uid reached; connection closed'))).toBe(true);
      for (const c of clients) expect((await c.execute(readKeys, devNull)).status).toBe(2);
      clients.forEach((c) => c.close());
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });

  it('--frame-timeout: no handshake or half a request is closed; an established idle connection stays open', async () => {
    const daemon = await startDaemon(join(dir, 'timeout.sock'), ['-q', '--frame-timeout', '300']);
    try {
      const idle = await HelperClient.connect(daemon.socket);
      const silent = new RawPeer(daemon.socket);
      const half = new RawPeer(daemon.socket);
      await half.send('00000000');
      await half.send(Buffer.from(readKeys).subarray(0, 6), [devNull]);
      const t0 = Date.now();
      const [a, b] = await Promise.all([silent.observe(3000), half.observe(3000)]);
      expect({ silent: a.closedByServer, half: b.closedByServer }).toEqual({ silent: true, half: true });
      expect(Date.now() - t0).toBeLessThan(2000);
      silent.close();
      half.close();
      await sleep(1000);
      // Idle for more than three timeouts between requests: still served.
      expect((await idle.execute(readKeys, devNull)).status).toBe(2);
      idle.close();
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });
});
