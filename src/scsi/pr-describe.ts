import { decodeSense, Sense } from './sense.js';
import { Opcode, ScsiStatus, SenseKey } from './status.js';

const PR_IN_ACTIONS = ['READ KEYS', 'READ RESERVATION', 'REPORT CAPABILITIES', 'READ FULL STATUS'];
const PR_OUT_ACTIONS = [
  'REGISTER',
  'RESERVE',
  'RELEASE',
  'CLEAR',
  'PREEMPT',
  'PREEMPT AND ABORT',
  'REGISTER AND IGNORE EXISTING KEY',
  'REGISTER AND MOVE',
  'REPLACE LOST RESERVATION',
];
const TYPES: Record<number, string> = { 1: 'WE', 3: 'EA', 5: 'WE-RO', 6: 'EA-RO', 7: 'WE-AR', 8: 'EA-AR' };

/** Decoded fields of a PR CDB (and its basic parameter list) for logs and the CLI. */
export interface PrCommandSummary {
  op: string;
  action: string;
  type?: string;
  key?: string;
  saKey?: string;
}

function hexKey(params: Uint8Array, offset: number): string {
  return '0x' + Buffer.from(params.subarray(offset, offset + 8)).toString('hex');
}

export function describePrCommand(cdb: Uint8Array, params: Uint8Array = new Uint8Array()): PrCommandSummary {
  const sa = cdb[1]! & 0x1f;
  if (cdb[0] === Opcode.PERSISTENT_RESERVE_IN) {
    return { op: 'PR IN', action: PR_IN_ACTIONS[sa] ?? `SA 0x${sa.toString(16)}` };
  }
  if (cdb[0] !== Opcode.PERSISTENT_RESERVE_OUT) return { op: `opcode 0x${cdb[0]!.toString(16)}`, action: '' };
  const summary: PrCommandSummary = { op: 'PR OUT', action: PR_OUT_ACTIONS[sa] ?? `SA 0x${sa.toString(16)}` };
  const type = cdb[2]! & 0x0f;
  if (type !== 0) summary.type = TYPES[type] ?? `0x${type.toString(16)}`;
  if (params.length >= 16) {
    summary.key = hexKey(params, 0);
    summary.saKey = hexKey(params, 8);
  }
  return summary;
}

/** "KEY/ASC/ASCQ" in hex, as sense is usually quoted; null when there is none. */
export function describeSense(sense: Uint8Array | null | undefined): string | null {
  if (!sense) return null;
  const code = decodeSense(sense);
  if (!code) return null;
  const h = (n: number) => n.toString(16).padStart(2, '0');
  return `${h(code.key)}/${h(code.asc)}/${h(code.ascq)}`;
}

const words = (name: string): string => name.replace(/_/g, ' ');
const STATUS_NAMES = new Map(Object.entries(ScsiStatus).map(([name, value]) => [value as number, words(name)]));
const SENSE_KEY_NAMES = new Map(Object.entries(SenseKey).map(([name, value]) => [value as number, words(name)]));
const ASC_NAMES = new Map(Object.entries(Sense).map(([name, code]) => [(code.asc << 8) | code.ascq, words(name).toLowerCase()]));

/** "RESERVATION CONFLICT" for 0x18; the hex value for a status without a name here. */
export function statusName(status: number): string {
  return STATUS_NAMES.get(status) ?? `status 0x${status.toString(16).padStart(2, '0')}`;
}

/** The sense key's name, e.g. UNIT ATTENTION, or null when the sense is not decodable. */
export function senseKeyName(sense: Uint8Array | null | undefined): string | null {
  const code = sense ? decodeSense(sense) : null;
  return code ? (SENSE_KEY_NAMES.get(code.key) ?? `sense key 0x${code.key.toString(16)}`) : null;
}

/** Sense in words for the log: "UNIT ATTENTION 2a/03 (reservations preempted)". */
export function describeSenseInWords(sense: Uint8Array | null | undefined): string | null {
  const code = sense ? decodeSense(sense) : null;
  if (!code) return null;
  const h = (n: number) => n.toString(16).padStart(2, '0');
  const asc = ASC_NAMES.get((code.asc << 8) | code.ascq);
  return `${senseKeyName(sense)} ${h(code.asc)}/${h(code.ascq)}${asc ? ` (${asc})` : ''}`;
}
