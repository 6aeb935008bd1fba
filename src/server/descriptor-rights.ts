import * as native from '../native/binding.js';
import type { CommandResult } from '../protocol/response.js';
import { fixedSense, Sense, type SenseCode } from '../scsi/sense.js';
import { ScsiStatus } from '../scsi/status.js';



/**
 * The reply for a request whose descriptor lacks the access its command
 * needs, or null when it has it. Devices the daemon reaches by other means
 * (a multipath map's paths, a simulated LUN) must answer only a client who
 * could read (PR IN) or write (PR OUT) the device itself: an O_PATH
 * descriptor needs no permission on the device at all (open(2)).
 *
 * PR OUT on a descriptor without write access gets INVALID OPCODE, as from
 * the original (do_pr_out in qemu scsi/qemu-pr-helper.c checks O_ACCMODE).
 * A PR IN the descriptor cannot read gets what the original's SG_IO gets on
 * an O_PATH descriptor: EBADF, so ABORTED COMMAND (scsi_sense_from_errno's
 * default row).
 */
export function accessRefusal(direction: 'in' | 'out', flags: number | null): CommandResult | null {
  const mode = flags === null ? null : flags & native.O_ACCMODE;
  if (direction === 'out') {
    if (mode === null || mode === native.O_RDONLY || (flags! & native.O_PATH) !== 0) return refused(Sense.INVALID_OPCODE);
    return null;
  }
  if (mode === null || mode === native.O_WRONLY || (flags! & native.O_PATH) !== 0) return refused(Sense.IO_PROCESS_TERMINATED);
  return null;
}

function refused(code: SenseCode): CommandResult {
  return { status: ScsiStatus.CHECK_CONDITION, sense: fixedSense(code) };
}
