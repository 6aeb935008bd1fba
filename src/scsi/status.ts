/** SCSI status byte values (SAM-5) that the helper produces, passes through or names. */
export const ScsiStatus = {
  GOOD: 0x00,
  CHECK_CONDITION: 0x02,
  CONDITION_MET: 0x04,
  BUSY: 0x08,
  RESERVATION_CONFLICT: 0x18,
  TASK_SET_FULL: 0x28,
  ACA_ACTIVE: 0x30,
  TASK_ABORTED: 0x40,
} as const;

/** "RESERVATION CONFLICT"; null for a status SAM-5 does not define. */
export function scsiStatusName(status: number): string | null {
  const name = Object.keys(ScsiStatus).find((k) => ScsiStatus[k as keyof typeof ScsiStatus] === status);
  return name === undefined ? null : name.replaceAll('_', ' ');
}

export const SenseKey = {
  NO_SENSE: 0x0,
  NOT_READY: 0x2,
  MEDIUM_ERROR: 0x3,
  HARDWARE_ERROR: 0x4,
  ILLEGAL_REQUEST: 0x5,
  UNIT_ATTENTION: 0x6,
  DATA_PROTECT: 0x7,
  ABORTED_COMMAND: 0xb,
} as const;

export const Opcode = {
  PERSISTENT_RESERVE_IN: 0x5e,
  PERSISTENT_RESERVE_OUT: 0x5f,
} as const;
