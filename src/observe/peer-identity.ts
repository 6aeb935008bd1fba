import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

/** Who is behind a connection, beyond SO_PEERCRED. Fields are absent where /proc tells nothing. */
export interface PeerFields {
  /** The VM: QEMU's -name, else the libvirt machine scope's name. */
  vm?: string;
  /** The program (argv[0]'s base name), e.g. qemu-system-x86_64. */
  exe?: string;
}

function readProc(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/**
 * The guest name in QEMU's `-name [guest=]NAME[,process=...][,debug-threads=...]`
 * (qemu-options.hx): a QemuOpts string whose first element may omit its
 * key, with "," written as ",,".
 */
export function guestName(option: string): string | null {
  const parts = option.replace(/,,/g, '\0').split(',').map((p) => p.replace(/\0/g, ','));
  for (const [i, part] of parts.entries()) {
    if (part.startsWith('guest=')) return part.slice('guest='.length) || null;
    if (i === 0 && !/^[a-z-]+=/.test(part)) return part || null;
  }
  return null;
}

/** The value of QEMU's -name (or --name) in a NUL-separated /proc/PID/cmdline. */
export function nameFromCmdline(cmdline: string): string | null {
  const argv = cmdline.split('\0');
  for (let i = 0; i < argv.length - 1; i++) {
    if (argv[i] === '-name' || argv[i] === '--name') return guestName(argv[i + 1]!);
  }
  return null;
}

/**
 * The machine name of a systemd machine scope in /proc/PID/cgroup, e.g.
 * "qemu-1-vm1" from .../machine-qemu\x2d1\x2dvm1.scope/...: libvirt names it
 * "qemu-ID-NAME" (virDomainDriverGenerateMachineName); unit names escape
 * "-" and other bytes as \xNN (systemd-escape).
 */
export function machineFromCgroup(cgroup: string): string | null {
  const match = /\/machine-([^/\n]+)\.scope(?:\/|$)/m.exec(cgroup);
  if (!match) return null;
  return match[1]!.replace(/\\x([0-9a-fA-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/**
 * Reads the peer's identity from /proc once, when its connection is
 * accepted. A pid of 0 (the peer lives in another pid namespace) tells nothing.
 */
export function identifyPeer(pid: number, procRoot = '/proc'): PeerFields {
  if (pid <= 0) return {};
  const fields: PeerFields = {};
  const cmdline = readProc(join(procRoot, String(pid), 'cmdline'));
  if (cmdline) {
    const exe = basename(cmdline.split('\0')[0]!);
    if (exe) fields.exe = exe;
    const name = nameFromCmdline(cmdline);
    if (name) fields.vm = name;
  }
  if (!fields.vm) {
    const machine = machineFromCgroup(readProc(join(procRoot, String(pid), 'cgroup')) ?? '');
    if (machine) fields.vm = machine.replace(/^qemu-\d+-/, '');
  }
  return fields;
}
