import { mkdirSync, mkdtempSync, openSync, closeSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FileStatus } from '../../src/observe/device-identity.js';
import { DeviceIdentities } from '../../src/observe/device-identity.js';

const root = mkdtempSync(join(tmpdir(), 'fake-sysfs-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function put(path: string, text: string): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
}

// A SCSI disk, a dm-multipath map on it, a SCSI generic node, a plain dm
// device (LVM), and a disk whose uevent is unreadable (only the symlink).
put('dev/block/8:16/uevent', 'MAJOR=8\nMINOR=16\nDEVNAME=sdb\nDEVTYPE=disk\n');
put('dev/block/8:16/device/wwid', 'naa.6001405e0d7b2bd2b5a4c3d8e1f20a11\n');
put('dev/block/253:3/uevent', 'MAJOR=253\nMINOR=3\nDEVNAME=dm-3\n');
put('dev/block/253:3/dm/uuid', 'mpath-36001405e0d7b2bd2b5a4c3d8e1f20a11\n');
put('dev/block/253:3/dm/name', 'mpatha\n');
put('dev/char/21:2/uevent', 'MAJOR=21\nMINOR=2\nDEVNAME=sg2\n');
put('dev/char/21:2/device/wwid', 'naa.6001405e0d7b2bd2b5a4c3d8e1f20a11\n');
put('dev/block/253:4/uevent', 'MAJOR=253\nMINOR=4\nDEVNAME=dm-4\n');
put('dev/block/253:4/dm/uuid', 'LVM-abc\n');
put('dev/block/253:4/dm/name', 'vg-lv\n');
mkdirSync(join(root, 'devices/pci/host0/block/sdc'), { recursive: true });
symlinkSync('../../devices/pci/host0/block/sdc', join(root, 'dev/block/8:32'));

const S_IFBLK = 0o060000;
const S_IFCHR = 0o020000;
const rdev = (major: number, minor: number): number => (major << 8) | minor;
const stats: Record<number, FileStatus> = {
  1: { mode: S_IFBLK | 0o660, dev: 5, ino: 1, rdev: rdev(8, 16) },
  2: { mode: S_IFBLK | 0o660, dev: 5, ino: 2, rdev: rdev(253, 3) },
  3: { mode: S_IFCHR | 0o660, dev: 5, ino: 3, rdev: rdev(21, 2) },
  4: { mode: S_IFBLK | 0o660, dev: 5, ino: 4, rdev: rdev(253, 4) },
  5: { mode: S_IFBLK | 0o660, dev: 5, ino: 5, rdev: rdev(8, 32) },
  6: { mode: S_IFBLK | 0o660, dev: 5, ino: 6, rdev: rdev(8, 48) },
};
let fstats = 0;
const fakeFstat = (fd: number): FileStatus => {
  fstats++;
  const st = stats[fd];
  if (!st) throw Object.assign(new Error('EBADF'), { code: 'EBADF' });
  return st;
};

describe('DeviceIdentities (fake sysfs)', () => {
  it.each([
    [1, { devno: '8:16', dev: 'sdb', wwid: 'naa.6001405e0d7b2bd2b5a4c3d8e1f20a11' }],
    [2, { devno: '253:3', dev: 'dm-3', wwid: 'mpath-36001405e0d7b2bd2b5a4c3d8e1f20a11', mpath: 'mpatha' }],
    [3, { devno: '21:2', dev: 'sg2', wwid: 'naa.6001405e0d7b2bd2b5a4c3d8e1f20a11' }],
    [4, { devno: '253:4', dev: 'dm-4', wwid: 'LVM-abc' }],
    [5, { devno: '8:32', dev: 'sdc' }],
    [6, { devno: '8:48' }],
    [99, {}],
  ])('descriptor %i: %j', (fd, fields) => {
    expect(new DeviceIdentities({ sysfsRoot: root, fstat: fakeFstat }).of(fd)).toEqual(fields);
  });

  it('reads sysfs once per device number and trusts it for ttlMs only', () => {
    const ids = new DeviceIdentities({ sysfsRoot: root, fstat: fakeFstat, ttlMs: 1000 });
    put('dev/block/8:64/uevent', 'DEVNAME=sde\n');
    stats[7] = { ...stats[6]!, ino: 7, rdev: rdev(8, 64) };
    expect(ids.of(7, 0)).toEqual({ devno: '8:64', dev: 'sde' });
    // The LUN behind 8:64 changes (hot unplug, another disk gets the number).
    unlinkSync(join(root, 'dev/block/8:64/uevent'));
    put('dev/block/8:64/uevent', 'DEVNAME=sdf\n');
    const before = fstats;
    expect(ids.of(7, 999)).toEqual({ devno: '8:64', dev: 'sde' });
    expect(fstats - before).toBe(1);
    expect(ids.of(7, 1000)).toEqual({ devno: '8:64', dev: 'sdf' });
  });

  it('a regular file (the simulated disk) is named by its path', () => {
    const path = join(root, 'disk.img');
    writeFileSync(path, '');
    const fd = openSync(path, 'r');
    try {
      expect(new DeviceIdentities().of(fd)).toEqual({ file: path });
    } finally {
      closeSync(fd);
    }
  });
});
