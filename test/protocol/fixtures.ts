/**
 * Named fixtures of the helper protocol's own framing (QEMU scsi/pr-helper.h,
 * scsi/qemu-pr-helper.c prh_co_entry and prh_write_response); the CDBs and
 * parameter lists it carries are in test/fixtures/scsi-bytes.ts.
 */
import { hex } from '../fixtures/scsi-bytes.js';

export const HANDSHAKE_ZERO = hex('00 00 00 00');

/** CHECK CONDITION, ABORTED COMMAND 00/06, size 0: what ENOTTY from SG_IO produces (A1). */
export const REPLY_IO_PROCESS_TERMINATED = Buffer.concat([
  hex('00 00 00 02  00 00 00 00  70 00 0b 00 00 00 00 0a 00 00 00 00 00 06 00 00 00 00'),
  Buffer.alloc(96 - 18),
]);
