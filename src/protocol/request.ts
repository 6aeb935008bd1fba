import { Opcode } from '../scsi/status.js';

export type Direction = 'in' | 'out';

/** One decoded request, as the helper received it. */
export interface PrRequest {
  /** All 16 bytes as received; the device gets them verbatim. */
  readonly cdb: Buffer;
  readonly direction: Direction;
  /** Allocation length (PR IN) or parameter bytes read (PR OUT). */
  readonly transferLength: number;
  /** PR OUT parameter bytes, exactly transferLength of them; empty for PR IN. */
  readonly params: Buffer;
  /** The descriptor that rode on the CDB bytes; the receiver owns it. */
  readonly fd: number;
}

export function directionOf(opcode: number): Direction | null {
  if (opcode === Opcode.PERSISTENT_RESERVE_IN) return 'in';
  if (opcode === Opcode.PERSISTENT_RESERVE_OUT) return 'out';
  return null;
}
