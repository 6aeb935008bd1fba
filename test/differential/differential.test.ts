import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as native from '../../src/native/binding.js';
import { settledFdCount } from '../helpers/fds.js';
import { QEMU_PR_HELPER, requireTool, startDaemon, startReferenceHelper, type RunningDaemon } from '../helpers/daemon.js';
import { RawPeer, type Observation } from '../helpers/raw-peer.js';
import { HANDSHAKE_OK, PROBES, type FdKind, type Probe } from './probes.js';

/*
 * Same bytes in, same bytes (or the same closure) out: our daemon with the
 * SG_IO backend against Debian's qemu-pr-helper, on descriptors that are not
 * SCSI devices, so every reply comes from the framing rules or the errno table.
 */
const haveReference = requireTool(QEMU_PR_HELPER, 'qemu-system-common');
const dir = mkdtempSync(join(tmpdir(), 'pr-diff-'));
let ours: RunningDaemon;
let reference: RunningDaemon;
let oursFdsAtStart = 0;

function openKind(kind: FdKind): number[] {
  const file = join(dir, 'disk.img');
  const fifo = join(dir, 'fifo');
  switch (kind) {
    case 'file-rw':
      return [openSync(file, 'r+')];
    case 'file-ro':
      return [openSync(file, 'r')];
    case 'dev-null':
      return [openSync('/dev/null', 'r+')];
    case 'dev-urandom':
      return [openSync('/dev/urandom', 'r')];
    case 'pipe-read':
      return [openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK)];
    case 'pipe-write': {
      const keepOpen = openSync(fifo, constants.O_RDWR);
      const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
      closeSync(keepOpen);
      return [writer];
    }
    case 'o-path':
      return [openSync(file, native.O_PATH)];
    case 'socket':
      return native.socketPair();
  }
}

async function run(daemon: RunningDaemon, probe: Probe): Promise<Observation> {
  const peer = new RawPeer(daemon.socket);
  const opened: number[] = [];
  try {
    for (const segment of probe.handshake ?? HANDSHAKE_OK) await sendSegment(peer, segment, opened, probe.fd);
    for (const segment of probe.segments) await sendSegment(peer, segment, opened, probe.fd);
    peer.endInput();
    return await peer.observe();
  } finally {
    peer.close();
    opened.forEach((fd) => closeSync(fd));
  }
}

async function sendSegment(peer: RawPeer, segment: { hex: string; fds?: number }, opened: number[], kind: FdKind): Promise<void> {
  const fds: number[] = [];
  for (let i = 0; i < (segment.fds ?? 0); i++) {
    const [fd, ...rest] = openKind(kind);
    fds.push(fd!);
    opened.push(fd!, ...rest);
  }
  try {
    await peer.send(segment.hex, fds);
  } catch (err) {
    // The server may already have closed on an earlier segment; that is part of the observation.
    if (!native.isSystemError(err, 'EPIPE') && !native.isSystemError(err, 'ECONNRESET')) throw err;
  }
}

describe.skipIf(!haveReference)('differential against qemu-pr-helper', () => {
  beforeAll(async () => {
    writeFileSync(join(dir, 'disk.img'), Buffer.alloc(4096));
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    [ours, reference] = await Promise.all([startDaemon(join(dir, 'ours.sock'), ['-q']), startReferenceHelper(join(dir, 'ref.sock'))]);
    oursFdsAtStart = await settledFdCount(ours.proc.pid!);
  });

  afterAll(async () => {
    await Promise.all([ours?.stop(), reference?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  for (const probe of PROBES) {
    it(probe.name, async () => {
      const [mine, theirs] = await Promise.all([run(ours, probe), run(reference, probe)]);
      expect(mine).toEqual(theirs);
      expect(mine.closedByServer).toBe(true);
      if (probe.expect === 'closes-silently') expect(mine.received).toBe('00000000');
      else expect(mine.received.length).toBeGreaterThan(8);
    });
  }

  it('clears O_NONBLOCK on the sender’s descriptor, like the original', async () => {
    for (const daemon of [ours, reference]) {
      const fd = openSync(join(dir, 'disk.img'), constants.O_RDWR | constants.O_NONBLOCK);
      const peer = new RawPeer(daemon.socket);
      await peer.send('00000000');
      await peer.send('5e000000000000200000000000000000', [fd]);
      await peer.waitForBytes(4 + 104);
      expect(native.getStatusFlags(fd) & native.O_NONBLOCK).toBe(0);
      peer.close();
      closeSync(fd);
    }
  });

  it('serves 50 concurrent clients with identical replies', async () => {
    const probe = PROBES.find((p) => p.name === 'READ KEYS on dev-urandom')!;
    const [mine, theirs] = await Promise.all([
      Promise.all(Array.from({ length: 50 }, () => run(ours, probe))),
      Promise.all(Array.from({ length: 50 }, () => run(reference, probe))),
    ]);
    expect(new Set(mine.map((o) => o.received)).size).toBe(1);
    expect(mine).toEqual(theirs);
  });

  it('keeps serving others while one client stalls mid-request', async () => {
    for (const daemon of [ours, reference]) {
      const stalled = new RawPeer(daemon.socket);
      const [fd] = openKind('file-rw');
      await stalled.send('00000000');
      await stalled.send('5f000000000000001800000000000000', [fd!]);
      await stalled.send('0000000000000000');
      const probe = PROBES.find((p) => p.name === 'READ KEYS on file-rw')!;
      const other = await run(daemon, probe);
      expect(other.closedByServer).toBe(true);
      expect(other.received.length).toBe(2 * (4 + 104));
      stalled.close();
      closeSync(fd!);
    }
  });

  it('holds no descriptor more after the suite than before it', async () => {
    expect(await settledFdCount(ours.proc.pid!, oursFdsAtStart)).toBe(oursFdsAtStart);
  });
});
