// The SG_IO backend end to end: our compiled daemon (SG_IO mode, no --simulate)
// runs under the LD_PRELOAD fake SCSI target and is driven through its socket
// exactly like QEMU would drive it. Every expected reply below is written out
// from pr-helper-protocol.md 1.5 / 2.2-2.4 (tables 2.4a, 2.4b, 2.4c), never
// computed by the code under test.
import { closeSync, constants as fsConstants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostStatusName } from '../../src/backend/sgio-result.js';
import { HelperClient, type Reply } from '../../src/client/client.js';
import { PrInAction, PrOutAction } from '../../src/scsi/pr-codes.js';
import { basicParams, BUSY, CHECK_CONDITION, FIXED_SENSE, GOOD, hex, prInCdb, prOutCdb, RESERVATION_CONFLICT, sense96, TASK_SET_FULL, WE_RO } from '../fixtures/scsi-bytes.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { createFakeTargetDir, FakeDevice, fakeTargetEnv, type FakeResponse } from '../helpers/fake-target.js';
import { settledFdCount } from '../helpers/fds.js';
import { RawPeer } from '../helpers/raw-peer.js';
import { waitFor } from '../helpers/wait.js';

// ---------------------------------------------------------------------------
// Expected bytes, written out from the spec

const NO_SENSE = Buffer.alloc(96);

/** Table 2.4c, plus the rows of 2.4a/2.4b in its general form, as 96-byte sense buffers. */
const SENSE = Object.fromEntries(Object.entries(FIXED_SENSE).map(([name, bytes]) => [name, sense96(bytes)])) as { [K in keyof typeof FIXED_SENSE]: Buffer };

interface Expected {
  status: number;
  sense: Buffer;
  data?: Buffer;
}

/** Compares status, all 96 sense bytes and the payload, as hex for readable diffs. */
function expectReply(reply: Reply, want: Expected): void {
  expect({ status: reply.status, sense: reply.sense.toString('hex'), data: reply.data.toString('hex') }).toEqual({
    status: want.status,
    sense: want.sense.toString('hex'),
    data: (want.data ?? Buffer.alloc(0)).toString('hex'),
  });
}

// ---------------------------------------------------------------------------
// Harness

/** Some PR IN parameter data a device could return (READ KEYS, two keys). */
const KEYS_DATA = hex('00000007 00000010 0102030405060708 1112131415161718');
const readKeys = (allocationLength = 256): Buffer => prInCdb(PrInAction.READ_KEYS, allocationLength);
const register = (): { cdb: Buffer; params: Buffer } => ({
  cdb: prOutCdb(PrOutAction.REGISTER, 0, 24),
  params: basicParams({ saKey: 0x1122334455667788n }),
});

type OpenMode = 'rw' | 'ro' | 'path';
const OPEN_FLAGS: Record<OpenMode, number> = {
  rw: fsConstants.O_RDWR,
  ro: fsConstants.O_RDONLY,
  // O_PATH is not exported by node:fs constants; Linux value (asm-generic).
  path: 0o10000000,
};

interface Harness {
  dir: string;
  sockDir: string;
  socket: string;
  daemon: RunningDaemon;
}

async function startHarness(args: string[]): Promise<Harness> {
  const dir = createFakeTargetDir('sgio-sock-dev-');
  const sockDir = mkdtempSync(join(tmpdir(), 'sgio-sock-'));
  const socket = join(sockDir, 'helper.sock');
  const daemon = await startDaemon(socket, args, { env: fakeTargetEnv(dir) });
  return { dir, sockDir, socket, daemon };
}

async function stopHarness(h: Harness | undefined): Promise<void> {
  if (!h) return;
  try {
    expect(await h.daemon.stop()).toBe(0);
  } finally {
    rmSync(h.dir, { recursive: true, force: true });
    rmSync(h.sockDir, { recursive: true, force: true });
  }
}

/** Opens the device like QEMU would (O_RDWR unless told otherwise), sends one request on a fresh connection. */
async function send(
  h: Harness,
  dev: FakeDevice,
  cdb: Buffer,
  options: { params?: Buffer; mode?: OpenMode; bufferLength?: number } = {},
): Promise<Reply> {
  const fd = openSync(dev.path, OPEN_FLAGS[options.mode ?? 'rw']);
  try {
    const client = await HelperClient.connect(h.socket);
    try {
      return await client.execute(cdb, fd, options.params, options.bufferLength);
    } finally {
      client.close();
    }
  } finally {
    closeSync(fd);
  }
}

/** Polls a condition (no fixed sleeps): resolves once it holds, fails after the deadline. */
async function until(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  if (!(await waitFor(cond, timeoutMs, 5))) throw new Error(`timed out waiting for ${what}`);
}

/** The daemon's stderr as parsed JSON lines (default verbosity, --log-format json). */
function logLines(d: RunningDaemon): Array<Record<string, unknown>> {
  return d
    .stderr()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Every fake device created, to check what reached SG_IO across the whole suite. */
const allDevices: FakeDevice[] = [];
const device = (h: Harness, script: FakeResponse[] = [{}]): FakeDevice => {
  const dev = new FakeDevice(h.dir, `dev${allDevices.length}`);
  dev.script(script);
  allDevices.push(dev);
  return dev;
};

// ---------------------------------------------------------------------------

describe('SG_IO backend through the socket (default --sgio-timeout)', () => {
  let h: Harness;
  let fdsAtStart: number;

  beforeAll(async () => {
    h = await startHarness([]);
    fdsAtStart = await settledFdCount(h.daemon.proc.pid!);
  });
  afterAll(() => stopHarness(h));

  describe('table 2.4a: ioctl errno -> reply', () => {
    // [name, errno, status, sense]
    const rows: Array<[string, number, number, Buffer]> = [
      ['0 (success)', 0, GOOD, NO_SENSE],
      ['EDOM', 33, TASK_SET_FULL, NO_SENSE],
      ['ENODEV (7.2: default row)', 19, CHECK_CONDITION, SENSE.IO_PROCESS_TERMINATED],
      ['EREMOTEIO', 121, CHECK_CONDITION, SENSE.INTERNAL_TARGET_FAILURE],
      ['EBADE', 52, RESERVATION_CONFLICT, NO_SENSE],
      ['ENODATA', 61, CHECK_CONDITION, SENSE.UNRECOVERED_READ_ERROR],
      ['ENOMEDIUM', 123, CHECK_CONDITION, SENSE.MEDIUM_NOT_PRESENT],
      ['ENOMEM', 12, CHECK_CONDITION, SENSE.INTERNAL_TARGET_FAILURE],
      ['EINVAL', 22, CHECK_CONDITION, SENSE.INVALID_FIELD_IN_CDB],
      ['ENOSPC', 28, CHECK_CONDITION, SENSE.SPACE_ALLOC_FAILED_WP],
      ['default: ENOTTY', 25, CHECK_CONDITION, SENSE.IO_PROCESS_TERMINATED],
      ['default: EBADF', 9, CHECK_CONDITION, SENSE.IO_PROCESS_TERMINATED],
      ['default: EPERM', 1, CHECK_CONDITION, SENSE.IO_PROCESS_TERMINATED],
      ['default: ENOSYS', 38, CHECK_CONDITION, SENSE.IO_PROCESS_TERMINATED],
      ['default: EBADFD', 77, CHECK_CONDITION, SENSE.IO_PROCESS_TERMINATED],
      ['default: EIO', 5, CHECK_CONDITION, SENSE.IO_PROCESS_TERMINATED],
      ['default: EAGAIN', 11, CHECK_CONDITION, SENSE.IO_PROCESS_TERMINATED],
    ];

    it.each(rows)('%s', async (_name, errno, status, sense) => {
      const dev = device(h, [{ errno }]);
      // PR IN and PR OUT map alike; an ioctl failure never carries data.
      expectReply(await send(h, dev, readKeys()), { status, sense });
      const { cdb, params } = register();
      expectReply(await send(h, dev, cdb, { params }), { status, sense });
      expect(dev.calls().map((c) => c.errno)).toEqual([errno, errno]);
    });
    it('warns about each SG_IO errno by name, with the device, the peer and the decoded reply', async () => {
      const errnoWarning = (name: string) => (l: Record<string, unknown>) => l['level'] === 40 && l['errno'] === name;
      await until('errno warnings on stderr', () => logLines(h.daemon).filter(errnoWarning('ENOTTY')).length >= 2);
      const [inLine, outLine] = logLines(h.daemon).filter(errnoWarning('ENOTTY'));
      expect(inLine).toMatchObject({ msg: 'PR IN READ KEYS failed: SG_IO ENOTTY', op: 'PR IN', action: 'READ KEYS', status: 'CHECK CONDITION', sense: 'ABORTED COMMAND 00/06 (I/O process terminated)', peer: { pid: process.pid } });
      expect(outLine).toMatchObject({ msg: 'PR OUT REGISTER failed: SG_IO ENOTTY', op: 'PR OUT', action: 'REGISTER', saKey: '0x1122334455667788' });
      expect(String(inLine!['file'])).toMatch(/\/dev\d+$/);
      // EBADE is RESERVATION CONFLICT: the audit trail at info, not a failure.
      expect(logLines(h.daemon).filter(errnoWarning('EBADE'))).toEqual([]);
      expect(logLines(h.daemon).filter((l) => l['errno'] === 'EBADE').map((l) => [l['level'], l['msg']])).toEqual([
        [30, 'PR IN READ KEYS: RESERVATION CONFLICT'],
        [30, 'PR OUT REGISTER: RESERVATION CONFLICT'],
      ]);
    });
  });

  describe('table 2.4b: host_status -> reply', () => {
    // [name, host_status, status, sense]
    const rows: Array<[string, number, number, Buffer]> = [
      ['NO_CONNECT', 0x01, CHECK_CONDITION, SENSE.LUN_NOT_RESPONDING],
      ['BUS_BUSY', 0x02, BUSY, NO_SENSE],
      ['TIME_OUT', 0x03, CHECK_CONDITION, SENSE.COMMAND_TIMEOUT],
      ['BAD_TARGET', 0x04, CHECK_CONDITION, SENSE.LUN_COMM_FAILURE],
      ['ABORT', 0x05, CHECK_CONDITION, SENSE.COMMANDS_CLEARED],
      ['RESET', 0x08, CHECK_CONDITION, SENSE.POWER_ON_RESET],
      ['TRANSPORT_DISRUPTED', 0x0e, CHECK_CONDITION, SENSE.I_T_NEXUS_LOSS],
      ['TARGET_FAILURE', 0x10, CHECK_CONDITION, SENSE.INTERNAL_TARGET_FAILURE],
      ['NEXUS_FAILURE', 0x11, RESERVATION_CONFLICT, NO_SENSE],
      ['ALLOC_FAILURE', 0x12, CHECK_CONDITION, SENSE.SPACE_ALLOC_FAILED_WP],
      ['MEDIUM_ERROR', 0x13, CHECK_CONDITION, SENSE.UNRECOVERED_READ_ERROR],
    ];

    it.each(rows)('%s (host_status %i)', async (_name, hostStatus, status, sense) => {
      // The device "returned" GOOD with data: host_status wins and no data goes out.
      const dev = device(h, [{ hostStatus, status: GOOD, data: KEYS_DATA }]);
      expectReply(await send(h, dev, readKeys()), { status, sense });
      const { cdb, params } = register();
      expectReply(await send(h, dev, cdb, { params }), { status, sense });
      expect(dev.calls()).toHaveLength(2);
    });

    // Deliberate difference: qemu-pr-helper answers GOOD for these; we answer
    // CHECK CONDITION, ABORTED COMMAND / I/O PROCESS TERMINATED and warn.
    const unknown = [0x07 /* DID_ERROR */, 0x06, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0f, 0x14, 0x100];

    it.each(unknown)('unknown host_status %i -> CHECK CONDITION 0B/00/06, no data', async (hostStatus) => {
      const dev = device(h, [{ hostStatus, status: GOOD, data: KEYS_DATA }]);
      expectReply(await send(h, dev, readKeys()), { status: CHECK_CONDITION, sense: SENSE.IO_PROCESS_TERMINATED });
      const { cdb, params } = register();
      expectReply(await send(h, dev, cdb, { params }), { status: CHECK_CONDITION, sense: SENSE.IO_PROCESS_TERMINATED });
    });

    it('warns about every host_status failure by name, with the device and the peer; unknown ones say what the original answers', async () => {
      const isHostWarning = (l: Record<string, unknown>) => l['level'] === 40 && typeof l['hostStatus'] === 'string';
      // One PR IN and one PR OUT per row; NEXUS_FAILURE is a RESERVATION CONFLICT, logged at info.
      const failing = rows.filter(([name]) => name !== 'NEXUS_FAILURE').map(([, v]) => v);
      const expected = [...failing, ...unknown].flatMap((v) => [v, v]);
      // Replies come after the warning is written, but stderr reaches us asynchronously.
      await until('host_status warnings on stderr', () => logLines(h.daemon).filter(isHostWarning).length >= expected.length);
      const warnings = logLines(h.daemon).filter(isHostWarning);
      expect(warnings.map((l) => l['hostStatus'])).toEqual(expected.map(hostStatusName));
      for (const w of warnings) {
        expect(w['msg']).toMatch(/^PR (IN READ KEYS|OUT REGISTER) failed: host_status (DID_\w+|0x100)/);
        expect(String(w['file'])).toMatch(/\/dev\d+$/);
        expect(w['peer']).toMatchObject({ pid: process.pid });
      }
      const unmapped = warnings.filter((w) => String(w['msg']).endsWith('(qemu-pr-helper would report GOOD)'));
      expect(unmapped.map((w) => w['hostStatus'])).toEqual(unknown.flatMap((v) => [hostStatusName(v), hostStatusName(v)]));
      expect(warnings.find((w) => w['hostStatus'] === 'DID_ERROR')).toBeDefined();
    });
  });

  describe('2.3 step 3: driver_status', () => {
    it.each([0x06, 0x02, 0x04, 0x0e])('driver_status %i (timeout bit mask) -> BUSY, no sense, no data', async (driverStatus) => {
      const dev = device(h, [{ driverStatus, status: GOOD, data: KEYS_DATA }]);
      expectReply(await send(h, dev, readKeys()), { status: BUSY, sense: NO_SENSE });
    });

    it('driver_status without the timeout bits (0x08 DRIVER_SENSE, 0x01) does not change the device status', async () => {
      const dev = device(h, [{ driverStatus: 0x08, status: GOOD, data: KEYS_DATA }, { driverStatus: 0x01, status: RESERVATION_CONFLICT }]);
      expectReply(await send(h, dev, readKeys()), { status: GOOD, sense: NO_SENSE, data: KEYS_DATA });
      expectReply(await send(h, dev, readKeys()), { status: RESERVATION_CONFLICT, sense: NO_SENSE });
    });

    it('decision order: host_status before driver_status before the device status', async () => {
      const dev = device(h, [
        { hostStatus: 0x11, driverStatus: 0x06, status: CHECK_CONDITION },
        { driverStatus: 0x06, status: RESERVATION_CONFLICT },
      ]);
      expectReply(await send(h, dev, readKeys()), { status: RESERVATION_CONFLICT, sense: NO_SENSE });
      expectReply(await send(h, dev, readKeys()), { status: BUSY, sense: NO_SENSE });
    });

    it('a driver timeout is a warning that says so', async () => {
      const dev = device(h, [{ driverStatus: 0x06, status: GOOD }]);
      await send(h, dev, readKeys());
      const mine = (l: Record<string, unknown>) => l['file'] === dev.path && l['level'] === 40;
      await until('the warning', () => logLines(h.daemon).some(mine));
      expect(logLines(h.daemon).find(mine)).toMatchObject({ msg: 'PR IN READ KEYS failed: driver timeout', driverStatus: 'DRIVER_TIMEOUT', status: 'BUSY' });
    });
  });

  describe('2.3 step 4: device status passthrough', () => {
    it('RESERVATION CONFLICT (0x18): no sense, no data', async () => {
      const dev = device(h, [{ status: RESERVATION_CONFLICT, data: KEYS_DATA }]);
      expectReply(await send(h, dev, readKeys()), { status: RESERVATION_CONFLICT, sense: NO_SENSE });
      const { cdb, params } = register();
      expectReply(await send(h, dev, cdb, { params }), { status: RESERVATION_CONFLICT, sense: NO_SENSE });
    });

    it('other device statuses pass through verbatim (TASK SET FULL, BUSY, 0x22)', async () => {
      const dev = device(h, [{ status: TASK_SET_FULL }, { status: BUSY }, { status: 0x22 }]);
      for (const status of [TASK_SET_FULL, BUSY, 0x22]) {
        expectReply(await send(h, dev, readKeys()), { status, sense: NO_SENSE });
      }
    });

    it('CHECK CONDITION with fixed-format sense: all 96 bytes verbatim', async () => {
      // UNIT ATTENTION / RESERVATIONS PREEMPTED, with sense-key-specific and
      // vendor bytes filling the whole buffer.
      const sense = Buffer.alloc(96);
      hex('70 00 06 00 00 00 00 4e 00 00 00 00 2a 03 00 80 12 34').copy(sense);
      for (let i = 18; i < 96; i++) sense[i] = (i * 7 + 1) & 0xff;
      const dev = device(h, [{ status: CHECK_CONDITION, sense, data: KEYS_DATA }]);
      expectReply(await send(h, dev, readKeys()), { status: CHECK_CONDITION, sense });
      const { cdb, params } = register();
      expectReply(await send(h, dev, cdb, { params }), { status: CHECK_CONDITION, sense });
    });

    it('CHECK CONDITION with descriptor-format sense (0x72): all 96 bytes verbatim', async () => {
      // ILLEGAL REQUEST / INVALID FIELD IN CDB with a sense-key-specific
      // descriptor (02) and an information descriptor (00), rest vendor bytes.
      const sense = Buffer.alloc(96);
      hex('72 05 24 00 00 00 00 14  02 06 00 00 cf 00 07 00  00 0a 80 00 00 00 00 00 00 00 00 2a').copy(sense);
      for (let i = 28; i < 96; i++) sense[i] = 0xff - i;
      const dev = device(h, [{ status: CHECK_CONDITION, sense }]);
      expectReply(await send(h, dev, readKeys()), { status: CHECK_CONDITION, sense });
    });

    it('CHECK CONDITION with a short device sense: the rest of the 96 bytes is zero', async () => {
      const dev = device(h, [{ status: CHECK_CONDITION, sense: hex('72 06 29 00 00 00 00 00') }]);
      expectReply(await send(h, dev, readKeys()), { status: CHECK_CONDITION, sense: sense96('72 06 29 00 00 00 00 00') });
    });

    it('CHECK CONDITION without sense from the device: 96 zero bytes, nothing synthesized', async () => {
      const dev = device(h, [{ status: CHECK_CONDITION }]);
      expectReply(await send(h, dev, readKeys()), { status: CHECK_CONDITION, sense: NO_SENSE });
    });

    it('GOOD with data: size = 8192 - resid', async () => {
      const data = Buffer.from(Array.from({ length: 64 }, (_, i) => i + 1));
      const dev = device(h, [
        { data }, // default resid = 8192 - 64
        { data, resid: 8192 - 16 }, // the device says only 16 bytes are valid
        { data, resid: 8192 - 40 },
      ]);
      expectReply(await send(h, dev, readKeys(1024)), { status: GOOD, sense: NO_SENSE, data });
      expectReply(await send(h, dev, readKeys(1024)), { status: GOOD, sense: NO_SENSE, data: data.subarray(0, 16) });
      expectReply(await send(h, dev, readKeys(1024)), { status: GOOD, sense: NO_SENSE, data: data.subarray(0, 40) });
    });

    it('GOOD with a full 8192-byte transfer (resid 0, allocation length 8192)', async () => {
      const data = Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 13) & 0xff));
      const dev = device(h, [{ data, resid: 0 }]);
      expectReply(await send(h, dev, readKeys(8192)), { status: GOOD, sense: NO_SENSE, data });
    });

    it('GOOD: more data than the allocation length is truncated to it', async () => {
      const data = Buffer.from(Array.from({ length: 200 }, (_, i) => 0xff - i));
      const dev = device(h, [{ data }]);
      expectReply(await send(h, dev, readKeys(8)), { status: GOOD, sense: NO_SENSE, data: data.subarray(0, 8) });
      expectReply(await send(h, dev, readKeys(199)), { status: GOOD, sense: NO_SENSE, data: data.subarray(0, 199) });
      // An allocation length below what the caller's buffer could take still limits the reply.
      expectReply(await send(h, dev, readKeys(24), { bufferLength: 8192 }), { status: GOOD, sense: NO_SENSE, data: data.subarray(0, 24) });
    });

    it('GOOD with allocation length 0: empty payload', async () => {
      const dev = device(h, [{ data: KEYS_DATA }]);
      expectReply(await send(h, dev, readKeys(0)), { status: GOOD, sense: NO_SENSE });
      expect(dev.calls().map((c) => [c.direction, c.dxferLen])).toEqual([['from-dev', 8192]]);
    });

    it('PR OUT GOOD: empty payload', async () => {
      const dev = device(h, [{ status: GOOD }]);
      const { cdb, params } = register();
      expectReply(await send(h, dev, cdb, { params }), { status: GOOD, sense: NO_SENSE });
    });
  });

  describe('what the device receives (2.2)', () => {
    it('PR IN: all 16 CDB bytes verbatim, cmd_len 16, from-dev, dxfer_len 8192 whatever the allocation length', async () => {
      const dev = device(h, [{ data: KEYS_DATA }]);
      // Bytes 1..15 are not validated; only 7-8 (allocation length) frame the reply.
      const odd = hex('5e 1f fe fd fc fb fa 00 30 a5 5a 11 22 33 44 55');
      const cdbs = [odd, readKeys(0), readKeys(1), readKeys(100), readKeys(8192), prInCdb(PrInAction.READ_FULL_STATUS, 4096)];
      for (const cdb of cdbs) await send(h, dev, cdb);
      const calls = dev.calls();
      expect(calls.map((c) => c.cdb.toString('hex'))).toEqual(cdbs.map((c) => c.toString('hex')));
      for (const c of calls) {
        expect(c.cdb).toHaveLength(16);
        expect(c).toMatchObject({
          direction: 'from-dev',
          dxferLen: 8192,
          timeout: 30000,
          interfaceId: 'S'.charCodeAt(0),
          mxSbLen: 96,
          hadCapSysRawio: true,
          errno: 0,
        });
        expect(c.dataOut).toHaveLength(0);
        expect(c.error).toBeUndefined();
      }
    });

    it('PR OUT: all 16 CDB bytes verbatim, to-dev, dxfer_len = N (bytes 7-8) and the parameter bytes', async () => {
      const dev = device(h, [{}]);
      const params24 = basicParams({ key: 0x0102030405060708n, saKey: 0xa1a2a3a4a5a6a7a8n, aptpl: true });
      // Bytes 5-6 of PARAMETER LIST LENGTH are ignored for framing (1.4) but reach the device.
      const odd = hex('5f 01 03 de ad 00 01 00 18 be ef 01 02 03 04 05');
      const params40 = Buffer.from(Array.from({ length: 40 }, (_, i) => 0x80 | i));
      const params8k = Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 31 + 7) & 0xff));
      const sends: Array<[Buffer, Buffer]> = [
        [prOutCdb(PrOutAction.REGISTER, 0, 24), params24],
        [odd, params24],
        [prOutCdb(PrOutAction.RESERVE, WE_RO, 40), params40],
        [prOutCdb(PrOutAction.CLEAR, 0, 0), Buffer.alloc(0)],
        [prOutCdb(PrOutAction.REGISTER, 0, 8192), params8k],
      ];
      for (const [cdb, params] of sends) {
        expectReply(await send(h, dev, cdb, { params }), { status: GOOD, sense: NO_SENSE });
      }
      const calls = dev.calls();
      expect(calls.map((c) => [c.cdb.toString('hex'), c.direction, c.dxferLen, c.dataOut.toString('hex')])).toEqual(
        sends.map(([cdb, params]) => [cdb.toString('hex'), 'to-dev', params.length, params.toString('hex')]),
      );
      for (const c of calls) {
        expect(c).toMatchObject({ timeout: 30000, interfaceId: 'S'.charCodeAt(0), mxSbLen: 96, hadCapSysRawio: true });
      }
    });

    it('the SG_IO runs on a thread other than the event loop, in the daemon process', async () => {
      const dev = device(h, [{}]);
      await send(h, dev, readKeys());
      const [call] = dev.calls();
      expect(call!.pid).toBe(h.daemon.proc.pid);
      expect(call!.tid).not.toBe(h.daemon.proc.pid);
    });
  });

  describe('requests that must not reach SG_IO', () => {
    it('PR OUT on an O_RDONLY descriptor -> CHECK CONDITION 05/20/00, no SG_IO', async () => {
      const dev = device(h, [{ status: RESERVATION_CONFLICT }]);
      for (const [cdb, params] of [
        [register().cdb, register().params],
        [prOutCdb(PrOutAction.CLEAR, 0, 0), Buffer.alloc(0)],
      ] as const) {
        expectReply(await send(h, dev, cdb, { params, mode: 'ro' }), { status: CHECK_CONDITION, sense: SENSE.INVALID_OPCODE });
      }
      expect(dev.calls()).toEqual([]);
    });

    it('the refusal keeps the connection in step: the parameters were consumed, the next request works', async () => {
      const dev = device(h, [{ data: KEYS_DATA }]);
      const ro = openSync(dev.path, fsConstants.O_RDONLY);
      const rw = openSync(dev.path, fsConstants.O_RDWR);
      const client = await HelperClient.connect(h.socket);
      try {
        const { cdb, params } = register();
        expectReply(await client.execute(cdb, ro, params), { status: CHECK_CONDITION, sense: SENSE.INVALID_OPCODE });
        expectReply(await client.execute(readKeys(), rw), { status: GOOD, sense: NO_SENSE, data: KEYS_DATA });
        expectReply(await client.execute(cdb, ro, params), { status: CHECK_CONDITION, sense: SENSE.INVALID_OPCODE });
      } finally {
        client.close();
        closeSync(ro);
        closeSync(rw);
      }
      expect(dev.calls().map((c) => c.cdb[0])).toEqual([0x5e]);
    });

    it('PR OUT on an O_PATH descriptor counts as O_RDONLY (E7)', async () => {
      const dev = device(h, [{ status: RESERVATION_CONFLICT }]);
      const { cdb, params } = register();
      expectReply(await send(h, dev, cdb, { params, mode: 'path' }), { status: CHECK_CONDITION, sense: SENSE.INVALID_OPCODE });
      expect(dev.calls()).toEqual([]);
    });

    it('PR IN on an O_RDONLY descriptor does reach the device', async () => {
      const dev = device(h, [{ data: KEYS_DATA }]);
      expectReply(await send(h, dev, readKeys(), { mode: 'ro' }), { status: GOOD, sense: NO_SENSE, data: KEYS_DATA });
      expect(dev.calls().map((c) => c.direction)).toEqual(['from-dev']);
    });

    it.each([
      ['INQUIRY', '12 00 00 00 60 00'],
      ['TEST UNIT READY', '00 00 00 00 00 00'],
      ['MODE SENSE(10)', '5a 00 3f 00 00 00 00 00 fc 00'],
      ['PERSISTENT RESERVE IN - 1', '5d 00 00 00 00 00 00 00 20 00'],
      ['REPORT LUNS', 'a0 00 00 00 00 00 00 00 00 10 00 00'],
    ])('%s: connection closed, no reply, nothing reaches SG_IO', async (_name, bytes) => {
      const dev = device(h, [{}]);
      const cdb = Buffer.alloc(16);
      hex(bytes).copy(cdb);
      const fd = openSync(dev.path, fsConstants.O_RDWR);
      const peer = new RawPeer(h.socket);
      try {
        expect((await peer.waitForBytes(4)).toString('hex')).toBe('00000000');
        await peer.send('00000000');
        await peer.send(cdb, [fd]);
        expect(await peer.observe()).toEqual({ received: '00000000', closedByServer: true });
      } finally {
        peer.close();
        closeSync(fd);
      }
      expect(dev.calls()).toEqual([]);
    });

    it('says "Invalid CDB, closing socket." for each of them', async () => {
      const invalid = () => logLines(h.daemon).filter((l) => l['msg'] === 'Invalid CDB, closing socket.');
      await until('"Invalid CDB" lines on stderr', () => invalid().length >= 5);
      expect(invalid().map((l) => l['opcode'])).toEqual([0x12, 0x00, 0x5a, 0x5d, 0xa0]);
    });
  });

  describe('isolation', () => {
    it('16 connections blocked on a hung device do not delay a 17th on a healthy one; all get replies', async () => {
      const HUNG = 16;
      const DELAY_MS = 3000;
      const hungData = hex('00000001 00000008 0badc0de0badc0de');
      const hung = device(h, [{ delayMs: DELAY_MS, data: hungData }]);
      const healthy = device(h, [{ data: KEYS_DATA }]);

      const fds: number[] = [];
      const clients: HelperClient[] = [];
      try {
        for (let i = 0; i < HUNG; i++) {
          fds.push(openSync(hung.path, fsConstants.O_RDWR));
          clients.push(await HelperClient.connect(h.socket));
        }
        let order = 0;
        const hungReplies = clients.map((c, i) =>
          c.execute(readKeys(), fds[i]!).then((reply) => ({ reply, at: performance.now(), seq: order++ })),
        );
        // Every hung command is inside SG_IO (the fake target logs on arrival) before the healthy one is sent.
        await until('16 SG_IO calls blocked on the hung device', () => hung.calls().length === HUNG, DELAY_MS - 500);

        const reply = await send(h, healthy, readKeys());
        const healthyAt = performance.now();
        const healthySeq = order++;
        expectReply(reply, { status: GOOD, sense: NO_SENSE, data: KEYS_DATA });

        const done = await Promise.all(hungReplies);
        for (const d of done) expectReply(d.reply, { status: GOOD, sense: NO_SENSE, data: hungData });
        // The healthy reply came first, before any hung reply.
        expect(done.every((d) => d.seq > healthySeq)).toBe(true);
        expect(healthyAt).toBeLessThan(Math.min(...done.map((d) => d.at)));
        // The hung commands ran concurrently, on 16 distinct threads.
        expect(new Set(hung.calls().map((c) => c.tid)).size).toBe(HUNG);
      } finally {
        clients.forEach((c) => c.close());
        fds.forEach((fd) => closeSync(fd));
      }
    });
  });

  it('only PERSISTENT RESERVE IN/OUT ever reached SG_IO, always with cmd_len 16', () => {
    const calls = allDevices.flatMap((d) => d.calls());
    expect(calls.length).toBeGreaterThan(100);
    expect(new Set(calls.map((c) => c.cdb[0]))).toEqual(new Set([0x5e, 0x5f]));
    expect(new Set(calls.map((c) => c.cdb.length))).toEqual(new Set([16]));
  });

  it('logged no errors, and every stderr line is JSON', () => {
    const lines = logLines(h.daemon); // throws on a non-JSON line
    expect(lines.filter((l) => Number(l['level']) >= 50)).toEqual([]);
  });

  it('leaks no descriptors: /proc/PID/fd count is back to the count at start', async () => {
    expect(await settledFdCount(h.daemon.proc.pid!, fdsAtStart)).toBe(fdsAtStart);
  });
});

describe('SG_IO backend through the socket (--sgio-timeout 1234)', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(['--sgio-timeout', '1234']);
  });
  afterAll(() => stopHarness(h));

  it('passes the configured timeout to SG_IO for PR IN and PR OUT', async () => {
    const dev = device(h, [{ data: KEYS_DATA }, { status: RESERVATION_CONFLICT }]);
    expectReply(await send(h, dev, readKeys()), { status: GOOD, sense: NO_SENSE, data: KEYS_DATA });
    const { cdb, params } = register();
    expectReply(await send(h, dev, cdb, { params }), { status: RESERVATION_CONFLICT, sense: NO_SENSE });
    expect(dev.calls().map((c) => [c.direction, c.timeout])).toEqual([
      ['from-dev', 1234],
      ['to-dev', 1234],
    ]);
  });
});
