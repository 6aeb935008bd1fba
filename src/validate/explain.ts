/**
 * Known causes of failed PR commands, each with its fix. The causes come from
 * field reports and target source: LIO drivers/target/target_core_pr.c
 * (core_scsi3_update_and_write_aptpl, core_scsi3_pro_reserve), tgt usr/spc.c,
 * the Windows "Validate SCSI-3 Persistent Reservation" reports quoted by
 * Microsoft's askcore blog (2009-04-15) and quantum/esos issue 62, and
 * fence-agents agents/scsi/fence_scsi.py.
 */
import { PrInAction, PrOutAction } from '../scsi/pr-codes.js';
import { decodeSense } from '../scsi/sense.js';
import { ScsiStatus, SenseKey } from '../scsi/status.js';
import type { Command, Reply } from './steps.js';

export interface Explanation {
  /** The likely cause, in one sentence. */
  readonly cause: string;
  /** What to do about it. */
  readonly fix: string;
}

const REGISTERING: readonly number[] = [PrOutAction.REGISTER, PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY];

/** Why `reply` to `command` is not what a conforming target answers, when a cause is known; null otherwise. */
export function explainFailure(command: Command, reply: Reply): Explanation | null {
  if (reply.status === ScsiStatus.RESERVATION_CONFLICT) {
    if (command.kind === 'out' && REGISTERING.includes(command.action)) {
      return {
        cause: 'registering never conflicts with a persistent reservation, so an SPC-2 RESERVE(6/10) held by another initiator blocks this LUN (LIO and SCST refuse PR commands then)',
        fix: 'find the host holding the SPC-2 reservation and release it (sg_raw DEVICE 17 00 00 00 00 00 is RELEASE(6)), or reset the LUN',
      };
    }
    return {
      cause: 'another initiator holds a reservation or registration that the validation did not create',
      fix: 'run without --force on an idle LUN, or remove the other registrations first (sg_persist --out --clear from their owner)',
    };
  }
  if (reply.status === ScsiStatus.BUSY || reply.status === ScsiStatus.TASK_SET_FULL) {
    return { cause: 'the target is overloaded or busy', fix: 'retry when the LUN is idle' };
  }
  if (reply.status !== ScsiStatus.CHECK_CONDITION) return null;
  const sense = decodeSense(reply.sense);
  if (sense === null) return { cause: 'CHECK CONDITION without sense data', fix: 'check the helper log: it may have lost the device' };
  const is = (asc: number, ascq: number): boolean => sense.asc === asc && sense.ascq === ascq;
  if (sense.key === SenseKey.NOT_READY && is(0x08, 0x00) && command.kind === 'out') {
    if (REGISTERING.includes(command.action)) {
      return {
        cause:
          'LIO cannot write its APTPL state: its <db_root>/pr directory is missing or read-only, so every REGISTER is applied but answered NOT READY (Windows validation reports status 21, ERROR_NOT_READY)',
        fix: 'on the target host create the pr/ directory under LIO\'s db_root (cat /sys/kernel/config/target/dbroot; usually /etc/target/pr or /var/target/pr) and make it writable',
      };
    }
    return {
      cause: 'LIO answers NOT READY instead of RESERVATION CONFLICT to an unregistered I_T nexus when no reservation is held',
      fix: 'harmless for WSFC and fence_scsi, which register first; a target bug to report upstream',
    };
  }
  if (sense.key === SenseKey.ILLEGAL_REQUEST && is(0x20, 0x00)) {
    return {
      cause: 'the device does not implement PERSISTENT RESERVE IN/OUT (Windows validation: "does not support Persistent Reservation", status 1)',
      fix: 'use a LUN or target that supports SCSI-3 persistent reservations; virtual disks of some hypervisors and USB disks do not',
    };
  }
  if (sense.key === SenseKey.ILLEGAL_REQUEST && is(0x24, 0x00)) {
    if (command.kind === 'out' && command.action === PrOutAction.PREEMPT_AND_ABORT) {
      return {
        cause: 'the target does not implement PREEMPT AND ABORT (tgt answers INVALID FIELD IN CDB), which fence_scsi fences with',
        fix: 'use a target with PREEMPT AND ABORT (LIO, SCST) for fence_scsi',
      };
    }
    if (command.kind === 'in' && command.action === PrInAction.READ_FULL_STATUS) {
      return {
        cause: 'the target does not implement READ FULL STATUS (tgt); neither WSFC nor fence_scsi needs it',
        fix: 'none needed; tools that show registrations per initiator (sg_persist -s) will not work',
      };
    }
    if (command.kind === 'in' && (command.allocationLength ?? 8) < 8) {
      return {
        cause: 'the target rejects allocation lengths below 8 (LIO, tgt) instead of returning what fits',
        fix: 'harmless for WSFC and fence_scsi; initiators ask for at least the 8-byte header',
      };
    }
  }
  if (sense.key === SenseKey.ABORTED_COMMAND || sense.key === SenseKey.HARDWARE_ERROR) {
    return {
      cause: 'the helper or the path to the device failed (a path down, the device gone)',
      fix: 'check the helper log (journalctl -u pr-helper) and the device (multipath -ll, dmesg)',
    };
  }
  if (sense.key === SenseKey.NOT_READY) {
    return { cause: 'the logical unit is not ready', fix: 'check the device on the host (sg_turs DEVICE) and the target' };
  }
  return null;
}

/** A GOOD where another node's registration or reservation should have conflicted. */
export const NOT_SHARED: Explanation = {
  cause: 'the two devices do not reach one LUN through two I_T nexuses: either they are different LUNs, or they share one nexus (same initiator port and target port)',
  fix: 'give each node its own initiator (a distinct iSCSI initiator name or NPIV port) to the same LUN; two VMs on one host share the host\'s nexus',
};

/** Node 2 does not see node 1's key. */
export const NOT_SAME_LUN: Explanation = {
  cause: 'a key registered through one device is not seen through the other: they are different LUNs, or the target keeps PR state per path',
  fix: 'pass two paths (or sessions) to the same LUN; compare their WWIDs (/lib/udev/scsi_id -g DEVICE)',
};

/** Node 2's registration replaced node 1's: one nexus. */
export const SAME_NEXUS: Explanation = {
  cause: 'node 2\'s REGISTER AND IGNORE EXISTING KEY replaced node 1\'s key: both devices are the same I_T nexus, so the target sees one initiator',
  fix: 'each cluster node needs its own initiator port (iSCSI initiator name, FC NPIV WWPN); with one nexus per host, run the cluster nodes on different hosts',
};

/** READ RESERVATION shows nothing right after a successful RESERVE. */
export const RESERVATION_NOT_REPORTED: Explanation = {
  cause: 'the target does not report the reservation it just accepted ("Some PR implementations fail to report existing PR on a disk", quantum/esos issue 62)',
  fix: 'a target bug: update the target software; Windows validation fails on it',
};
