import { readFileSync } from 'node:fs';
import * as native from '../native/binding.js';
import { encodeHandover, type Handover } from './handover.js';

export const CAP_SYS_RAWIO = 17;

export interface PrivilegePlan {
  readonly uid: number;
  readonly gid: number;
  /** Capabilities to keep, as a mask. */
  readonly keep: bigint;
}

function lastCapability(): number {
  try {
    return Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
  } catch {
    return 40;
  }
}

/**
 * Drops to `plan` and re-executes this same process image (same pid, so
 * pidfiles, MAINPID and LISTEN_PID stay true).
 *
 * capset() only changes the calling thread, and Node's threadpool (started
 * before user code with an ESM entry) would keep full root capabilities; after
 * execve every thread starts from the new credentials (node-deps.md §5).
 * For a non-root uid the kept capabilities survive execve only as ambient
 * capabilities; for uid 0 they survive through the reduced bounding set.
 * Supplementary groups are cleared and the bounding set reduced to `keep`,
 * like libcap-ng's CAPNG_DROP_SUPP_GRP | CAPNG_CLEAR_BOUNDING in the original.
 */
export function dropPrivilegesAndReexec(plan: PrivilegePlan, handover: Handover, keepOpen: readonly number[]): never {
  for (let cap = 0; cap <= lastCapability(); cap++) {
    if ((plan.keep & (1n << BigInt(cap))) === 0n) native.dropFromBoundingSet(cap);
  }
  native.setKeepCapabilities(true);
  process.setgroups!([]);
  process.setgid!(plan.gid);
  process.setuid!(plan.uid);
  native.capSet(plan.keep, plan.keep, plan.keep);
  native.clearAmbient();
  for (let cap = 0; cap <= lastCapability(); cap++) {
    if ((plan.keep & (1n << BigInt(cap))) !== 0n) native.raiseAmbient(cap);
  }
  // Node marks stdio close-on-exec; the new image must keep its stderr.
  for (const fd of [0, 1, 2, ...keepOpen]) native.setCloseOnExec(fd, false);
  const env = { ...process.env, ...encodeHandover(handover) };
  return native.execve(
    process.execPath,
    [process.argv0, ...process.execArgv, ...process.argv.slice(1)],
    Object.entries(env).map(([k, v]) => `${k}=${v}`),
  );
}

/** After the re-exec: the credentials must be exactly what was planned, or the daemon refuses to run. */
export function verifyDroppedPrivileges(expected: NonNullable<Handover['dropped']>): void {
  const caps = native.capGet();
  const want = BigInt(expected.capabilities);
  if (process.getuid!() !== expected.uid || process.getgid!() !== expected.gid || caps.effective !== want || caps.permitted !== want) {
    throw new Error(
      `Failed to drop privileges: running as ${process.getuid!()}:${process.getgid!()} with capabilities 0x${caps.effective.toString(16)}`,
    );
  }
}
