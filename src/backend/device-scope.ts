import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Why PR on block device major:minor would reach more than that device, or
 * null when it is a whole device (or not one sysfs knows). The kernel passes
 * SG_IO from a partition (sd_ioctl) or from a device-mapper device that maps
 * only part of its one underlying device (dm_blk_ioctl, "issued against a
 * subset of the parent bdev") to the whole LUN only with CAP_SYS_RAWIO, which
 * the daemon holds for everyone: so a client given a partition or a logical
 * volume could reserve or preempt the LUN of the whole host. A dm map is
 * whole when, like linear_prepare_ioctl's test, it has one underlying device
 * of the same size, itself whole; dm-multipath maps (uuid "mpath-") are whole
 * by construction and are served through their paths.
 */
export function partialDeviceReason(sysfsRoot: string, major: number, minor: number): string | null {
  return reasonAt(join(sysfsRoot, 'dev', 'block', `${major}:${minor}`), `${major}:${minor}`, 0);
}

/** A dm stack deeper than this is refused rather than walked (the kernel's own limit is 16). */
const MAX_DEPTH = 16;

function reasonAt(dir: string, name: string, depth: number): string | null {
  if (read(join(dir, 'partition')) !== null) return `${name} is a partition`;
  const uuid = read(join(dir, 'dm', 'uuid'));
  if (uuid === null) return null;
  if (uuid.startsWith('mpath-')) return null;
  if (depth >= MAX_DEPTH) return `${name} is a device-mapper stack deeper than ${MAX_DEPTH}`;
  let slaves: string[];
  try {
    slaves = readdirSync(join(dir, 'slaves'));
  } catch {
    slaves = [];
  }
  if (slaves.length !== 1) return `${name} is a device-mapper device over ${slaves.length} devices`;
  const slaveDir = join(dir, 'slaves', slaves[0]!);
  const size = read(join(dir, 'size'));
  const slaveSize = read(join(slaveDir, 'size'));
  if (size === null || size !== slaveSize) return `${name} is a device-mapper device over part of ${slaves[0]}`;
  return reasonAt(slaveDir, slaves[0]!, depth + 1);
}

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}
