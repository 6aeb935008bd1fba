// dm-multipath through the daemon's socket, with real SG_IO plumbing: the
// compiled daemon (test/e2e/tools/multipath-fake-daemon.ts = runDaemon + the
// SG_IO backend with a fake sysfs tree) runs under the LD_PRELOAD fake SCSI
// target, so every path's SG_IO is a real ioctl() on a descriptor the daemon
// opened itself, on a native worker thread, recorded by the fake target.
// The multipath semantics are covered in-process by multipath.test.ts; this
// file checks what reaches each path, fd hygiene, and that a hung path blocks
// no other client.
import { closeSync, constants as fsConstants, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HelperClient, type Reply } from '../../src/client/client.js';
import { PrInAction, PrOutAction } from '../../src/scsi/pr-codes.js';
import { basicParams, prInCdb, prOutCdb } from '../fixtures/scsi-bytes.js';
import { startProcess, type RunningDaemon } from '../helpers/daemon.js';
import { REPO_ROOT } from '../helpers/repo-root.js';
import { createFakeTargetDir, FakeDevice, fakeTargetEnv } from '../helpers/fake-target.js';
import { settledFdCount } from '../helpers/fds.js';
import { sleep } from '../helpers/wait.js';
import { O_PATH } from '../../src/native/binding.js';

const ENTRY = join(REPO_ROOT, 'dist/test/e2e/tools/multipath-fake-daemon.js');
const isRoot = process.getuid?.() === 0;
if (!isRoot) {
  const message = 'multipath socket tests need root (the SG_IO daemon requires CAP_SYS_RAWIO)';
  if (process.env.CI) throw new Error(message);
  console.warn(`SKIPPING: ${message}`);
}

const GOOD = 0x00;
const CHECK = 0x02;
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const KEYS_DATA = hex('00000007 00000010 00000000000000aa 00000000000000bb');

interface Rig {
  root: string;
  dir: string;
  socket: string;
  daemon: RunningDaemon;
  sda: FakeDevice;
  sdb: FakeDevice;
  plain: FakeDevice;
  /** The map's "node" (a file the fake sysfs calls 254:0). */
  map: string;
}

async function startRig(): Promise<Rig> {
  const root = mkdtempSync(join(tmpdir(), 'mpath-sock-'));
  const dir = createFakeTargetDir('mpath-sock-dev-');
  const sysfs = join(root, 'sys');
  const ids: Record<string, string> = { 'dm-0': '254:0', sda: '8:0', sdb: '8:16' };
  const mapDir = join(sysfs, 'dev', 'block', '254:0');
  mkdirSync(join(mapDir, 'dm'), { recursive: true });
  mkdirSync(join(mapDir, 'slaves'));
  writeFileSync(join(mapDir, 'dm', 'uuid'), 'mpath-36001405fake\n');
  writeFileSync(join(mapDir, 'dm', 'name'), 'mpatha\n');
  for (const [name, devno] of [['sda', '8:0'], ['sdb', '8:16']] as const) {
    writeFileSync(join(mapDir, 'slaves', name), '');
    mkdirSync(join(sysfs, 'block', name, 'device'), { recursive: true });
    writeFileSync(join(sysfs, 'block', name, 'dev'), `${devno}\n`);
    writeFileSync(join(sysfs, 'block', name, 'device', 'state'), 'running\n');
  }
  const idsFile = join(root, 'ids.json');
  writeFileSync(idsFile, JSON.stringify(ids));
  const sda = new FakeDevice(dir, 'sda');
  const sdb = new FakeDevice(dir, 'sdb');
  const plain = new FakeDevice(dir, 'plain');
  const map = join(dir, 'dm-0');
  writeFileSync(map, '');
  const socket = join(root, 'helper.sock');
  const daemon = await startProcess(process.execPath, [ENTRY, '-k', socket], socket, {
    env: { ...fakeTargetEnv(dir), MPATH_FAKE_SYSFS: sysfs, MPATH_FAKE_DEV: dir, MPATH_FAKE_IDS: idsFile },
  });
  return { root, dir, socket, daemon, sda, sdb, plain, map };
}

async function send(rig: Rig, path: string, cdb: Buffer, params?: Buffer): Promise<{ reply: Reply; ms: number }> {
  const fd = openSync(path, fsConstants.O_RDWR);
  const t0 = process.hrtime.bigint();
  try {
    const client = await HelperClient.connect(rig.socket);
    try {
      const reply = await client.execute(cdb, fd, params);
      return { reply, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
    } finally {
      client.close();
    }
  } finally {
    closeSync(fd);
  }
}

describe.skipIf(!isRoot)('multipath through the socket (LD_PRELOAD fake target)', () => {
  let rig: Rig;
  let fdsAtStart: number;

  beforeAll(async () => {
    if (!existsSync(ENTRY)) throw new Error(`${ENTRY} missing: run \`npx tsc -p tsconfig.json\` (npm test does)`);
    rig = await startRig();
    fdsAtStart = await settledFdCount(rig.daemon.proc.pid!);
  });
  afterAll(async () => {
    if (!rig) return;
    try {
      expect(await rig.daemon.stop()).toBe(0);
    } finally {
      rmSync(rig.root, { recursive: true, force: true });
      rmSync(rig.dir, { recursive: true, force: true });
    }
  });
  beforeEach(() => {
    for (const d of [rig.sda, rig.sdb, rig.plain]) {
      d.script([{}]);
      d.clearCalls();
    }
  });

  it('REGISTER on the map: the guest\'s CDB and parameter list reach both paths, read-write fds the daemon opened', async () => {
    const params = basicParams({ saKey: 0x1122334455667788n, aptpl: true });
    const cdb = prOutCdb(PrOutAction.REGISTER, 0, 24);
    const { reply } = await send(rig, rig.map, cdb, params);
    expect(reply.status).toBe(GOOD);
    for (const dev of [rig.sda, rig.sdb]) {
      const calls = dev.calls();
      expect(calls).toHaveLength(1);
      expect(calls[0]).toMatchObject({ direction: 'to-dev', dxferLen: 24, interfaceId: 0x53, mxSbLen: 96, errno: 0 });
      expect(calls[0]!.cdb.toString('hex')).toBe(cdb.toString('hex'));
      expect(calls[0]!.dataOut.toString('hex')).toBe(params.toString('hex'));
      expect(calls[0]!.hadCapSysRawio).toBe(true);
    }
  });

  it('PR IN on the map: one path, the full 8 KiB read, the device\'s data back', async () => {
    rig.sda.script([{ data: KEYS_DATA }]);
    const { reply } = await send(rig, rig.map, prInCdb(PrInAction.READ_KEYS, 256));
    expect(reply.status).toBe(GOOD);
    expect(reply.data.toString('hex')).toBe(KEYS_DATA.toString('hex'));
    expect(rig.sda.calls()).toMatchObject([{ direction: 'from-dev', dxferLen: 8192 }]);
    expect(rig.sdb.calls()).toEqual([]);
  });

  it('a path with a transport failure (DID_TRANSPORT_DISRUPTED): the other path answers', async () => {
    rig.sda.script([{ hostStatus: 0x0e }]);
    rig.sdb.script([{ data: KEYS_DATA }]);
    const { reply } = await send(rig, rig.map, prInCdb(PrInAction.READ_FULL_STATUS, 256));
    expect(reply.status).toBe(GOOD);
    expect(reply.data.toString('hex')).toBe(KEYS_DATA.toString('hex'));
    expect([rig.sda.calls().length, rig.sdb.calls().length]).toEqual([1, 1]);
  });

  it('PARAMETER LIST LENGTH ERROR for a short list on a map, without touching a path', async () => {
    const { reply } = await send(rig, rig.map, prOutCdb(PrOutAction.REGISTER, 0, 8), Buffer.alloc(8));
    expect(reply.status).toBe(CHECK);
    expect(reply.sense.subarray(0, 14).toString('hex')).toBe('700005000000000a000000001a00');
    expect([rig.sda.calls().length, rig.sdb.calls().length]).toEqual([0, 0]);
  });

  it('a non-map descriptor still takes the plain SG_IO path', async () => {
    rig.plain.script([{ data: KEYS_DATA }]);
    const { reply } = await send(rig, rig.plain.path, prInCdb(PrInAction.READ_KEYS, 256));
    expect(reply.data.toString('hex')).toBe(KEYS_DATA.toString('hex'));
    expect(rig.plain.calls()).toHaveLength(1);
  });

  it('a hung path delays only its own request: other clients and other devices are answered meanwhile', async () => {
    rig.sdb.script([{ delayMs: 2500 }]);
    const slow = send(rig, rig.map, prOutCdb(PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, 0, 24), basicParams({ saKey: 0xaan }));
    await sleep(200); // the fan-out is now waiting for sdb
    rig.plain.script([{ data: KEYS_DATA }]);
    const other = await send(rig, rig.plain.path, prInCdb(PrInAction.READ_KEYS, 256));
    rig.sda.script([{ data: KEYS_DATA }]);
    const sameMapIn = await send(rig, rig.map, prInCdb(PrInAction.READ_KEYS, 256));
    const done = await slow;
    expect(other.reply.status).toBe(GOOD);
    expect(sameMapIn.reply.status).toBe(GOOD);
    expect(other.ms).toBeLessThan(1000);
    expect(sameMapIn.ms).toBeLessThan(1000);
    expect(done.reply.status).toBe(GOOD);
    expect(done.ms).toBeGreaterThanOrEqual(2400);
    // The READ KEYS through sda ran on another native thread while sdb's was stuck.
    // (The daemon's own 10-byte commands are left out: sda failed in an earlier
    // test, so its registration is checked before the guest's command uses it.)
    const guestOnSda = rig.sda.calls().filter((c) => c.cdb.length === 16);
    expect(guestOnSda).toHaveLength(2);
    expect(guestOnSda[1]!.tid).not.toBe(rig.sdb.calls()[0]!.tid);
  }, 20_000);

  it('an O_PATH descriptor of the map (no read permission needed) gets no PR IN through the paths', async () => {
    rig.sda.script([{ data: KEYS_DATA }]);
    rig.sdb.script([{ data: KEYS_DATA }]);
    const fd = openSync(rig.map, O_PATH);
    try {
      const client = await HelperClient.connect(rig.socket);
      for (const action of [PrInAction.READ_KEYS, PrInAction.READ_FULL_STATUS]) {
        const reply = await client.execute(prInCdb(action, 256), fd);
        expect({ status: reply.status, data: reply.data.length }).toEqual({ status: CHECK, data: 0 });
      }
      client.close();
    } finally {
      closeSync(fd);
    }
    expect([...rig.sda.calls(), ...rig.sdb.calls()]).toEqual([]);
  });

  it('no descriptor leaks: every path fd the daemon opened is closed again', async () => {
    expect(await settledFdCount(rig.daemon.proc.pid!, fdsAtStart)).toBe(fdsAtStart);
  });
});
