import { fstatSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { basename, join } from 'node:path';
import { splitDevice } from '../backend/multipath.js';

/** What the log says about the device behind a descriptor. Fields are absent where sysfs has nothing. */
export interface DeviceFields {
  /** Kernel name: sdh, dm-3, sg2. */
  dev?: string;
  /** "MAJ:MIN" of a device node. */
  devno?: string;
  /** The LUN's stable id: device/wwid of a SCSI device, dm/uuid of a device-mapper map. */
  wwid?: string;
  /** dm-multipath map name (dm/name). */
  mpath?: string;
  /** Not a device (the simulated disk's image file): its path. */
  file?: string;
}

/** What the lookup needs of fstat(2). */
export type FileStatus = Pick<Stats, 'mode' | 'rdev' | 'dev' | 'ino'>;

export interface DeviceIdentityOptions {
  /** Where sysfs and procfs are mounted (tests point these at fake trees). */
  readonly sysfsRoot?: string;
  readonly procRoot?: string;
  /**
   * How long a lookup is trusted. Device numbers are reused after a hot
   * unplug (a new sdh may be another LUN), so the cache forgets.
   */
  readonly ttlMs?: number;
  /** Replaces fstat(2) (tests). */
  readonly fstat?: (fd: number) => FileStatus;
}

const S_IFMT = 0o170000;
const S_IFBLK = 0o060000;
const S_IFCHR = 0o020000;
const DEFAULT_TTL_MS = 60_000;
const MAX_CACHED = 1024;
const MPATH_UUID_PREFIX = 'mpath-';

function readValue(path: string): string | null {
  try {
    const value = readFileSync(path, 'utf8').trim();
    return value === '' ? null : value;
  } catch {
    return null;
  }
}

/** DEVNAME from a sysfs uevent file (KEY=VALUE lines). */
function ueventName(text: string | null): string | null {
  const match = /^DEVNAME=(.+)$/m.exec(text ?? '');
  return match ? basename(match[1]!) : null;
}

/**
 * Names the device behind a descriptor for the log: kernel name, device
 * number, stable id and multipath map, read from sysfs once per device number
 * and cached; a descriptor costs one fstat(2) after that. The lookup happens
 * only when a line is written, never for a request that logs nothing.
 */
export class DeviceIdentities {
  private readonly sysfsRoot: string;
  private readonly procRoot: string;
  private readonly ttlMs: number;
  private readonly fstat: (fd: number) => FileStatus;
  private readonly cache = new Map<string, { fields: DeviceFields; expires: number }>();

  constructor(options: DeviceIdentityOptions = {}) {
    this.sysfsRoot = options.sysfsRoot ?? '/sys';
    this.procRoot = options.procRoot ?? '/proc';
    this.ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    this.fstat = options.fstat ?? ((fd) => fstatSync(fd));
  }

  /** The device fields of `fd` (empty when it cannot even be stat'ed). */
  of(fd: number, now = Date.now()): DeviceFields {
    let st: FileStatus;
    try {
      st = this.fstat(fd);
    } catch {
      return {};
    }
    const type = st.mode & S_IFMT;
    const kind = type === S_IFBLK ? 'block' : type === S_IFCHR ? 'char' : null;
    const key = kind ? `${kind}:${st.rdev}` : `file:${st.dev}:${st.ino}`;
    const cached = this.cache.get(key);
    if (cached && cached.expires > now) return cached.fields;
    const fields = kind ? this.lookUpDevice(kind, st.rdev) : this.lookUpFile(fd);
    this.cache.delete(key);
    if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, { fields, expires: now + this.ttlMs });
    return fields;
  }

  private lookUpDevice(kind: 'block' | 'char', rdev: number): DeviceFields {
    const { major, minor } = splitDevice(rdev);
    const devno = `${major}:${minor}`;
    const base = join(this.sysfsRoot, 'dev', kind, devno);
    const fields: DeviceFields = { devno };
    const name = ueventName(readValue(join(base, 'uevent'))) ?? linkName(base);
    if (name) fields.dev = name;
    const dmUuid = kind === 'block' ? readValue(join(base, 'dm', 'uuid')) : null;
    const wwid = readValue(join(base, 'device', 'wwid')) ?? dmUuid;
    if (wwid) fields.wwid = wwid;
    if (dmUuid?.startsWith(MPATH_UUID_PREFIX)) {
      const map = readValue(join(base, 'dm', 'name'));
      if (map) fields.mpath = map;
    }
    return fields;
  }

  private lookUpFile(fd: number): DeviceFields {
    try {
      return { file: readlinkSync(join(this.procRoot, 'self', 'fd', String(fd))) };
    } catch {
      return {};
    }
  }
}

/** /sys/dev/block/M:m is a symlink into /sys/devices/.../NAME. */
function linkName(base: string): string | null {
  try {
    return basename(readlinkSync(base));
  } catch {
    return null;
  }
}
