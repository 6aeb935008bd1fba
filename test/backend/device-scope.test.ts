// Partitions and partial device-mapper devices reach the whole LUN when the
// daemon issues SG_IO with CAP_SYS_RAWIO: the rule that tells them apart, on
// fake sysfs trees, and the daemon refusing them through its socket (the
// compiled daemon with the SG_IO backend under the LD_PRELOAD fake target).
import { closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { partialDeviceReason } from '../../src/backend/device-scope.js';
import { HelperClient } from '../../src/client/client.js';
import { PrInAction, PrOutAction } from '../../src/scsi/pr-codes.js';
import { basicParams, prInCdb, prOutCdb } from '../fixtures/scsi-bytes.js';
import { startProcess } from '../helpers/daemon.js';
import { createFakeTargetDir, FakeDevice, fakeTargetEnv } from '../helpers/fake-target.js';
import { REPO_ROOT } from '../helpers/repo-root.js';

const root = mkdtempSync(join(tmpdir(), 'device-scope-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const sysfs = join(root, 'sys');

/** A block device in the fake sysfs: /sys/devices/<name> with /sys/dev/block/M:m pointing at it, as the kernel lays it out. */
function device(name: string, devno: string, files: Record<string, string> = {}, slaves: string[] = []): void {
  const dir = join(sysfs, 'devices', name);
  mkdirSync(join(dir, 'slaves'), { recursive: true });
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(join(dir, file, '..'), { recursive: true });
    writeFileSync(join(dir, file), `${text}\n`);
  }
  for (const slave of slaves) symlinkSync(join(sysfs, 'devices', slave), join(dir, 'slaves', slave));
  mkdirSync(join(sysfs, 'dev', 'block'), { recursive: true });
  symlinkSync(dir, join(sysfs, 'dev', 'block', devno));
}

device('sda', '8:0', { size: '2097152' });
device('sda1', '8:1', { size: '1024000', partition: '1' });
device('sdb', '8:16', { size: '2097152' });
device('dm-0', '254:0', { size: '2097152', 'dm/uuid': 'mpath-36001405fake' }, ['sda', 'sdb']);
device('dm-1', '254:1', { size: '409600', 'dm/uuid': 'LVM-abcdef' }, ['sda']);
device('dm-2', '254:2', { size: '2097152', 'dm/uuid': 'CRYPT-whole' }, ['sdb']);
device('dm-3', '254:3', { size: '1024000', 'dm/uuid': 'LVM-onpart' }, ['sda1']);
device('dm-4', '254:4', { size: '2097152', 'dm/uuid': 'LVM-striped' }, ['sda', 'sdb']);
device('dm-5', '254:5', { size: '409600', 'dm/uuid': 'LVM-over-lv' }, ['dm-1']);
device('dm-6', '254:6', { size: '409600', 'dm/uuid': 'part1-mpath-36001405fake' }, ['dm-0']);

describe('partialDeviceReason (fake sysfs)', () => {
  it.each([
    ['a whole disk', 8, 0, null],
    ['a partition', 8, 1, '8:1 is a partition'],
    ['a dm-multipath map', 254, 0, null],
    ['an LV over part of a disk', 254, 1, '254:1 is a device-mapper device over part of sda'],
    ['a dm device over one whole disk', 254, 2, null],
    ['a whole-size map over a partition', 254, 3, 'sda1 is a partition'],
    ['a map over two devices', 254, 4, '254:4 is a device-mapper device over 2 devices'],
    ['a whole-size map over a partial map', 254, 5, 'dm-1 is a device-mapper device over part of sda'],
    ['a kpartx partition of a multipath map', 254, 6, '254:6 is a device-mapper device over part of dm-0'],
    ['a device sysfs does not know', 9, 9, null],
  ])('%s', (_what, major, minor, reason) => {
    expect(partialDeviceReason(sysfs, major, minor)).toBe(reason);
  });
});

const ENTRY = join(REPO_ROOT, 'dist/test/e2e/tools/multipath-fake-daemon.js');
const isRoot = process.getuid?.() === 0;
if (!isRoot) {
  const message = 'device scope socket tests need root (the SG_IO daemon requires CAP_SYS_RAWIO)';
  if (process.env.CI) throw new Error(message);
  console.warn(`SKIPPING: ${message}`);
}

describe.skipIf(!isRoot)('the daemon refuses partitions and partial dm devices', () => {
  const dir = createFakeTargetDir('device-scope-dev-');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const ids = join(root, 'ids.json');
  writeFileSync(ids, JSON.stringify({ sda: '8:0', sda1: '8:1', 'dm-1': '254:1', 'dm-2': '254:2' }));
  const disks = Object.fromEntries(['sda', 'sda1', 'dm-1', 'dm-2'].map((n) => [n, new FakeDevice(dir, n)]));

  async function run(args: string[], exercise: (client: HelperClient) => Promise<void>): Promise<string> {
    if (!existsSync(ENTRY)) throw new Error(`${ENTRY} missing: run \`npx tsc -p tsconfig.json\``);
    const socket = join(root, `d${args.length}.sock`);
    const daemon = await startProcess(process.execPath, [ENTRY, '-k', socket, ...args], socket, {
      env: { ...fakeTargetEnv(dir), MPATH_FAKE_SYSFS: sysfs, MPATH_FAKE_DEV: dir, MPATH_FAKE_IDS: ids },
    });
    const client = await HelperClient.connect(socket);
    try {
      await exercise(client);
    } finally {
      client.close();
      expect(await daemon.stop()).toBe(0);
    }
    return daemon.stderr();
  }

  const ask = async (client: HelperClient, name: string, out: boolean) => {
    const fd = openSync(disks[name]!.path, constants.O_RDWR);
    try {
      const list = basicParams({ saKey: 0x77n });
      const reply = out ? await client.execute(prOutCdb(PrOutAction.REGISTER, 0, list.length), fd, list) : await client.execute(prInCdb(PrInAction.READ_KEYS, 256), fd);
      return { status: reply.status, sense: reply.sense.subarray(0, 14).toString('hex') };
    } finally {
      closeSync(fd);
    }
  };
  const INVALID_OPCODE = { status: 2, sense: '700005000000000a000000002000' };
  const GOOD = { status: 0, sense: '0000000000000000000000000000' };

  it('partition and LV: INVALID OPCODE, nothing reaches SG_IO, one warning per device; whole devices are served', async () => {
    Object.values(disks).forEach((d) => d.clearCalls());
    const log = await run([], async (client) => {
      for (const name of ['sda1', 'dm-1']) {
        for (let i = 0; i < 3; i++) {
          expect(await ask(client, name, true)).toEqual(INVALID_OPCODE);
          expect(await ask(client, name, false)).toEqual(INVALID_OPCODE);
        }
      }
      expect(await ask(client, 'sda', true)).toEqual(GOOD);
      expect(await ask(client, 'dm-2', false)).toEqual(GOOD);
    });
    expect(disks['sda1']!.calls()).toEqual([]);
    expect(disks['dm-1']!.calls()).toEqual([]);
    expect(disks['sda']!.calls()).toHaveLength(1);
    expect(disks['dm-2']!.calls()).toHaveLength(1);
    const warnings = log.split('\n').filter((l) => l.includes('refusing PR on'));
    expect(warnings.map((l) => (JSON.parse(l) as { device: string }).device)).toEqual(['8:1', '254:1']);
    expect(warnings[0]).toContain('8:1 is a partition');
  });

  it('--allow-partial-devices: the original\'s behaviour, the command reaches the device', async () => {
    Object.values(disks).forEach((d) => d.clearCalls());
    await run(['--allow-partial-devices'], async (client) => {
      expect(await ask(client, 'sda1', true)).toEqual(GOOD);
      expect(await ask(client, 'dm-1', false)).toEqual(GOOD);
    });
    expect(disks['sda1']!.calls()).toHaveLength(1);
    expect(disks['dm-1']!.calls()).toHaveLength(1);
  });
});
