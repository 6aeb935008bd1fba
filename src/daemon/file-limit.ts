/**
 * The daemon's descriptor limit. Node raises the soft RLIMIT_NOFILE to the hard
 * limit at start-up (node.cc, PlatformInit), which is 524288 under systemd,
 * while qemu-pr-helper keeps the 1024 it is given. The daemon's own caps bound
 * what it can use, so the soft limit goes back down to that: a leak or a flood
 * then ends at a limit the caps explain, long before the system's file table.
 */
import * as native from '../native/binding.js';

/** The listener, log, status and metrics sockets, pidfile, libuv's own, stdio, multipath path nodes, state files. */
const BASE_DESCRIPTORS = 256;
/** Never below the limit a process normally starts with (and qemu-pr-helper runs with). */
const FLOOR = 1024;

export interface DescriptorCaps {
  readonly maxConnections: number;
  readonly maxSgioCommands: number;
}

/**
 * Each connection holds its socket plus the device descriptor of its one
 * request; each SG_IO command in flight may hold one more (a multipath path's).
 */
export function descriptorBudget(caps: DescriptorCaps): number {
  return Math.max(FLOOR, 2 * caps.maxConnections + caps.maxSgioCommands + BASE_DESCRIPTORS);
}

/** Sets the soft limit to the budget, never above the hard limit; returns the limit now in force. */
export function limitOpenFiles(caps: DescriptorCaps): native.FileLimit {
  const { hard } = native.openFileLimit();
  return native.setOpenFileSoftLimit(Math.min(hard, descriptorBudget(caps)));
}
