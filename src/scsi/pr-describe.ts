import { formatReservationKey, prInActionName, prOutActionName, prTypeAbbreviation } from './pr-codes.js';
import { decodePrInCdb } from './pr-in.js';
import { BASIC_PARAMETER_LIST_LENGTH, decodeBasicParameters, decodePrOutCdb } from './pr-out.js';
import { additionalSenseName, ascAscqText, decodeSense, senseKeyName } from './sense.js';
import { Opcode, scsiStatusName } from './status.js';

/** Decoded fields of a PR CDB (and its basic parameter list) for logs. */
export interface PrCommandSummary {
  op: string;
  action: string;
  type?: string;
  key?: string;
  saKey?: string;
}

/** `cdb` is QEMU's 16-byte CDB; `params` the PR OUT parameter bytes as received. */
export function describePrCommand(cdb: Uint8Array, params: Uint8Array = new Uint8Array()): PrCommandSummary {
  if (cdb[0] === Opcode.PERSISTENT_RESERVE_IN) return { op: 'PR IN', action: prInActionName(decodePrInCdb(cdb).action) };
  if (cdb[0] !== Opcode.PERSISTENT_RESERVE_OUT) return { op: `opcode 0x${cdb[0]!.toString(16)}`, action: '' };
  const fields = decodePrOutCdb(cdb);
  const summary: PrCommandSummary = { op: 'PR OUT', action: prOutActionName(fields.action) };
  if (fields.type !== 0) summary.type = prTypeAbbreviation(fields.type);
  if (params.length >= BASIC_PARAMETER_LIST_LENGTH) {
    // REGISTER AND MOVE carries its keys at the same offsets.
    const list = decodeBasicParameters(params);
    summary.key = formatReservationKey(list.reservationKey);
    summary.saKey = formatReservationKey(list.serviceActionKey);
  }
  return summary;
}

/** "KEY/ASC/ASCQ" in hex, as sense is usually quoted; null when there is none. */
export function describeSense(sense: Uint8Array | null | undefined): string | null {
  if (!sense) return null;
  const code = decodeSense(sense);
  if (!code) return null;
  return `${code.key.toString(16).padStart(2, '0')}/${ascAscqText(code.asc, code.ascq)}`;
}

/** "RESERVATION CONFLICT" for 0x18; the hex value for a status without a name. */
export function statusName(status: number): string {
  return scsiStatusName(status) ?? `status 0x${status.toString(16).padStart(2, '0')}`;
}

/** The sense key's name, e.g. UNIT ATTENTION, or null when the sense is not decodable. */
export function senseKeyNameOf(sense: Uint8Array | null | undefined): string | null {
  const code = sense ? decodeSense(sense) : null;
  return code ? senseKeyName(code.key) : null;
}

/** Sense in words for the log: "UNIT ATTENTION 2a/03 (reservations preempted)". */
export function describeSenseInWords(sense: Uint8Array | null | undefined): string | null {
  const code = sense ? decodeSense(sense) : null;
  if (!code) return null;
  const name = additionalSenseName(code.asc, code.ascq);
  return `${senseKeyName(code.key)} ${ascAscqText(code.asc, code.ascq)}${name ? ` (${name})` : ''}`;
}
