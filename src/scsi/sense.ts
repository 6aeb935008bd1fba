import { SenseKey } from './status.js';

/** A sense key with its additional sense code and qualifier. */
export interface SenseCode {
  readonly key: number;
  readonly asc: number;
  readonly ascq: number;
}

/** Length of fixed-format sense data as the original helper synthesizes it. */
export const FIXED_SENSE_LENGTH = 18;

/**
 * Builds 18 bytes of current, fixed-format sense (response code 0x70,
 * additional length 10), the only form qemu-pr-helper synthesizes
 * (pr-helper-protocol.md 2.4c).
 */
export function fixedSense(code: SenseCode): Buffer {
  const sense = Buffer.alloc(FIXED_SENSE_LENGTH);
  sense[0] = 0x70;
  sense[2] = code.key & 0x0f;
  sense[7] = 0x0a;
  sense[12] = code.asc;
  sense[13] = code.ascq;
  return sense;
}

/** Extracts key/ASC/ASCQ from fixed (0x70/0x71) or descriptor (0x72/0x73) sense; null if neither. */
export function decodeSense(sense: Uint8Array): SenseCode | null {
  const responseCode = sense[0]! & 0x7f;
  if ((responseCode === 0x70 || responseCode === 0x71) && sense.length >= 14) {
    return { key: sense[2]! & 0x0f, asc: sense[12]!, ascq: sense[13]! };
  }
  if ((responseCode === 0x72 || responseCode === 0x73) && sense.length >= 4) {
    return { key: sense[1]! & 0x0f, asc: sense[2]!, ascq: sense[3]! };
  }
  return null;
}

/** Named sense codes used across the helper, the SG_IO mapping and the simulated disk. */
export const Sense = {
  IO_PROCESS_TERMINATED: { key: SenseKey.ABORTED_COMMAND, asc: 0x00, ascq: 0x06 },
  LUN_COMMUNICATION_FAILURE: { key: SenseKey.ABORTED_COMMAND, asc: 0x08, ascq: 0x00 },
  LUN_NOT_RESPONDING: { key: SenseKey.ABORTED_COMMAND, asc: 0x05, ascq: 0x00 },
  COMMAND_TIMEOUT: { key: SenseKey.ABORTED_COMMAND, asc: 0x2e, ascq: 0x02 },
  COMMANDS_CLEARED_BY_DEVICE_SERVER: { key: SenseKey.ABORTED_COMMAND, asc: 0x2f, ascq: 0x02 },
  I_T_NEXUS_LOSS: { key: SenseKey.ABORTED_COMMAND, asc: 0x29, ascq: 0x07 },
  INVALID_OPCODE: { key: SenseKey.ILLEGAL_REQUEST, asc: 0x20, ascq: 0x00 },
  INVALID_FIELD_IN_CDB: { key: SenseKey.ILLEGAL_REQUEST, asc: 0x24, ascq: 0x00 },
  INVALID_FIELD_IN_PARAMETER_LIST: { key: SenseKey.ILLEGAL_REQUEST, asc: 0x26, ascq: 0x00 },
  PARAMETER_LIST_LENGTH_ERROR: { key: SenseKey.ILLEGAL_REQUEST, asc: 0x1a, ascq: 0x00 },
  LOGICAL_UNIT_NOT_SUPPORTED: { key: SenseKey.ILLEGAL_REQUEST, asc: 0x25, ascq: 0x00 },
  INSUFFICIENT_REGISTRATION_RESOURCES: { key: SenseKey.ILLEGAL_REQUEST, asc: 0x55, ascq: 0x04 },
  INTERNAL_TARGET_FAILURE: { key: SenseKey.HARDWARE_ERROR, asc: 0x44, ascq: 0x00 },
  UNRECOVERED_READ_ERROR: { key: SenseKey.MEDIUM_ERROR, asc: 0x11, ascq: 0x00 },
  MEDIUM_NOT_PRESENT: { key: SenseKey.NOT_READY, asc: 0x3a, ascq: 0x00 },
  SPACE_ALLOCATION_FAILED_WRITE_PROTECT: { key: SenseKey.DATA_PROTECT, asc: 0x27, ascq: 0x07 },
  POWER_ON_RESET: { key: SenseKey.UNIT_ATTENTION, asc: 0x29, ascq: 0x00 },
  RESERVATIONS_PREEMPTED: { key: SenseKey.UNIT_ATTENTION, asc: 0x2a, ascq: 0x03 },
  RESERVATIONS_RELEASED: { key: SenseKey.UNIT_ATTENTION, asc: 0x2a, ascq: 0x04 },
  REGISTRATIONS_PREEMPTED: { key: SenseKey.UNIT_ATTENTION, asc: 0x2a, ascq: 0x05 },
} as const satisfies Record<string, SenseCode>;
