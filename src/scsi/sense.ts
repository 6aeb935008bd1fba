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
 * additional length 10), the only form qemu-pr-helper synthesizes (QEMU
 * scsi/utils.c scsi_build_sense).
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
  INVALID_RELEASE_OF_PERSISTENT_RESERVATION: { key: SenseKey.ILLEGAL_REQUEST, asc: 0x26, ascq: 0x04 },
  PARAMETER_LIST_LENGTH_ERROR: { key: SenseKey.ILLEGAL_REQUEST, asc: 0x1a, ascq: 0x00 },
  LOGICAL_UNIT_NOT_SUPPORTED: { key: SenseKey.ILLEGAL_REQUEST, asc: 0x25, ascq: 0x00 },
  INSUFFICIENT_REGISTRATION_RESOURCES: { key: SenseKey.ILLEGAL_REQUEST, asc: 0x55, ascq: 0x04 },
  INTERNAL_TARGET_FAILURE: { key: SenseKey.HARDWARE_ERROR, asc: 0x44, ascq: 0x00 },
  UNRECOVERED_READ_ERROR: { key: SenseKey.MEDIUM_ERROR, asc: 0x11, ascq: 0x00 },
  MEDIUM_NOT_PRESENT: { key: SenseKey.NOT_READY, asc: 0x3a, ascq: 0x00 },
  /** LIO's TCM_LOGICAL_UNIT_COMMUNICATION_FAILURE (target_core_transport.c sense table): NOT READY, not ABORTED COMMAND. */
  NOT_READY_LUN_COMMUNICATION_FAILURE: { key: SenseKey.NOT_READY, asc: 0x08, ascq: 0x00 },
  SPACE_ALLOCATION_FAILED_WRITE_PROTECT: { key: SenseKey.DATA_PROTECT, asc: 0x27, ascq: 0x07 },
  POWER_ON_RESET: { key: SenseKey.UNIT_ATTENTION, asc: 0x29, ascq: 0x00 },
  RESERVATIONS_PREEMPTED: { key: SenseKey.UNIT_ATTENTION, asc: 0x2a, ascq: 0x03 },
  RESERVATIONS_RELEASED: { key: SenseKey.UNIT_ATTENTION, asc: 0x2a, ascq: 0x04 },
  REGISTRATIONS_PREEMPTED: { key: SenseKey.UNIT_ATTENTION, asc: 0x2a, ascq: 0x05 },
  COMMANDS_CLEARED_BY_ANOTHER_INITIATOR: { key: SenseKey.UNIT_ATTENTION, asc: 0x2f, ascq: 0x00 },
} as const satisfies Record<string, SenseCode>;

/** Sense key names (SPC-4 table "Sense key descriptions"), indexed by the 4-bit key. */
const SENSE_KEY_NAMES = [
  'NO SENSE',
  'RECOVERED ERROR',
  'NOT READY',
  'MEDIUM ERROR',
  'HARDWARE ERROR',
  'ILLEGAL REQUEST',
  'UNIT ATTENTION',
  'DATA PROTECT',
  'BLANK CHECK',
  'VENDOR SPECIFIC',
  'COPY ABORTED',
  'ABORTED COMMAND',
  'RESERVED (0xc)',
  'VOLUME OVERFLOW',
  'MISCOMPARE',
  'COMPLETED',
] as const;

export function senseKeyName(key: number): string {
  return SENSE_KEY_NAMES[key & 0x0f]!;
}

/**
 * The additional sense codes a PR command meets, in the lowercase words of
 * SPC-4's ASC/ASCQ table, keyed "asc/ascq" in hex: those of Sense plus the
 * two a device answers without the helper naming them.
 */
const ADDITIONAL_SENSE_NAMES: Readonly<Record<string, string>> = {
  '00/00': 'no additional sense information',
  '00/06': 'I/O process terminated',
  '04/00': 'logical unit not ready, cause not reportable',
  '05/00': 'logical unit does not respond to selection',
  '08/00': 'logical unit communication failure',
  '11/00': 'unrecovered read error',
  '1a/00': 'parameter list length error',
  '20/00': 'invalid command operation code',
  '24/00': 'invalid field in CDB',
  '25/00': 'logical unit not supported',
  '26/00': 'invalid field in parameter list',
  '26/04': 'invalid release of persistent reservation',
  '27/07': 'space allocation failed write protect',
  '29/00': 'power on, reset, or bus device reset occurred',
  '29/07': 'I_T nexus loss occurred',
  '2a/03': 'reservations preempted',
  '2a/04': 'reservations released',
  '2a/05': 'registrations preempted',
  '2e/02': 'command timeout during processing',
  '2f/00': 'commands cleared by another initiator',
  '2f/02': 'commands cleared by device server',
  '3a/00': 'medium not present',
  '44/00': 'internal target failure',
  '55/04': 'insufficient registration resources',
};

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');

/** "24/00" for ASC 0x24, ASCQ 0x00: how sense codes are usually quoted. */
export function ascAscqText(asc: number, ascq: number): string {
  return `${hex2(asc)}/${hex2(ascq)}`;
}

/** "invalid field in CDB"; null for a code outside the table. */
export function additionalSenseName(asc: number, ascq: number): string | null {
  return ADDITIONAL_SENSE_NAMES[ascAscqText(asc, ascq)] ?? null;
}
