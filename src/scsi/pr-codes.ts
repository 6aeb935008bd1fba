/**
 * Codes of the persistent-reservation commands and their names: service
 * actions, reservation TYPE and SCOPE. The one table of each for the engine,
 * the multipath planner, the client, the CLI and the logs.
 *
 * Clause numbers in src/scsi/ are those of SPC-4 draft revision 17 (spc4r17),
 * the revision Linux LIO cites in drivers/target/target_core_pr.h; later
 * revisions renumber the same clauses.
 */

/** PERSISTENT RESERVE IN and OUT CDBs have 10 bytes; QEMU zero-pads them to 16 on the helper socket. */
export const PR_CDB_LENGTH = 10;

/** PERSISTENT RESERVE IN service actions (spc4r17 6.13.1, table 159). */
export const PrInAction = { READ_KEYS: 0x00, READ_RESERVATION: 0x01, REPORT_CAPABILITIES: 0x02, READ_FULL_STATUS: 0x03 } as const;

/**
 * PERSISTENT RESERVE OUT service actions (spc4r17 6.14.2, table 171).
 * REPLACE LOST RESERVATION came with a later SPC-4 revision (sg3_utils cites
 * spc4r26 for its RLR_C capability bit).
 */
export const PrOutAction = {
  REGISTER: 0x00,
  RESERVE: 0x01,
  RELEASE: 0x02,
  CLEAR: 0x03,
  PREEMPT: 0x04,
  PREEMPT_AND_ABORT: 0x05,
  REGISTER_AND_IGNORE_EXISTING_KEY: 0x06,
  REGISTER_AND_MOVE: 0x07,
  REPLACE_LOST_RESERVATION: 0x08,
} as const;

/** Reservation TYPE codes (spc4r17 6.13.3.4, table 164); 0, 2, 4 and 9-15 are obsolete or reserved. */
export const PrType = {
  WRITE_EXCLUSIVE: 1,
  EXCLUSIVE_ACCESS: 3,
  WRITE_EXCLUSIVE_REGISTRANTS_ONLY: 5,
  EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: 6,
  WRITE_EXCLUSIVE_ALL_REGISTRANTS: 7,
  EXCLUSIVE_ACCESS_ALL_REGISTRANTS: 8,
} as const;
export type PrTypeCode = (typeof PrType)[keyof typeof PrType];

/** The only SCOPE a persistent reservation can have (spc4r17 6.13.3.3, table 163). */
export const LU_SCOPE = 0;

interface TypeNames {
  /** SPC's abbreviation, as in logs: "WE-RO". */
  readonly abbreviation: string;
  /** sg_persist's wording (sg3_utils src/sg_persist.c), which the CLI prints. */
  readonly description: string;
  /** The CLI's --type keyword. */
  readonly keyword: string;
}

const TYPE_NAMES: Readonly<Record<PrTypeCode, TypeNames>> = {
  [PrType.WRITE_EXCLUSIVE]: { abbreviation: 'WE', description: 'Write Exclusive', keyword: 'wr-ex' },
  [PrType.EXCLUSIVE_ACCESS]: { abbreviation: 'EA', description: 'Exclusive Access', keyword: 'ex-ac' },
  [PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY]: {
    abbreviation: 'WE-RO',
    description: 'Write Exclusive, registrants only',
    keyword: 'wr-ex-ro',
  },
  [PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY]: {
    abbreviation: 'EA-RO',
    description: 'Exclusive Access, registrants only',
    keyword: 'ex-ac-ro',
  },
  [PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS]: {
    abbreviation: 'WE-AR',
    description: 'Write Exclusive, all registrants',
    keyword: 'wr-ex-ar',
  },
  [PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS]: {
    abbreviation: 'EA-AR',
    description: 'Exclusive Access, all registrants',
    keyword: 'ex-ac-ar',
  },
};

const hex = (n: number): string => `0x${n.toString(16)}`;

function actionName(codes: Readonly<Record<string, number>>, action: number): string {
  const name = Object.keys(codes).find((k) => codes[k] === action);
  return name === undefined ? `SA ${hex(action)}` : name.replaceAll('_', ' ');
}

/** "READ FULL STATUS"; "SA 0x1f" for a code SPC does not define. */
export function prInActionName(action: number): string {
  return actionName(PrInAction, action);
}

/** "REGISTER AND IGNORE EXISTING KEY"; "SA 0x1f" for a code SPC does not define. */
export function prOutActionName(action: number): string {
  return actionName(PrOutAction, action);
}

export function isPrType(type: number): type is PrTypeCode {
  return Object.hasOwn(TYPE_NAMES, type);
}

/** Every registrant is a holder, so READ RESERVATION reports key 0 (LIO is_reservation_holder). */
export function isAllRegistrantsType(type: number): boolean {
  return type === PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS || type === PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS;
}

/** One holder, but every registrant may access the medium. */
export function isRegistrantsOnlyType(type: number): boolean {
  return type === PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY || type === PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY;
}

/** "WE-RO"; the hex code for an obsolete or reserved TYPE. */
export function prTypeAbbreviation(type: number): string {
  return isPrType(type) ? TYPE_NAMES[type].abbreviation : hex(type);
}

/** sg_persist's words: "Write Exclusive, registrants only", or "obsolete [0x2]" / "reserved [0x9]". */
export function prTypeDescription(type: number): string {
  return isPrType(type) ? TYPE_NAMES[type].description : `${type <= 4 ? 'obsolete' : 'reserved'} [${hex(type)}]`;
}

/** The CLI's --type keywords, in code order. */
export const PR_TYPE_KEYWORDS: readonly string[] = Object.values(TYPE_NAMES).map((n) => n.keyword);

/** The TYPE a --type keyword names (case-insensitive), or undefined. */
export function prTypeFromKeyword(keyword: string): PrTypeCode | undefined {
  const lower = keyword.toLowerCase();
  return Object.values(PrType).find((code) => TYPE_NAMES[code].keyword === lower);
}

export function scopeName(scope: number): string {
  return scope === LU_SCOPE ? 'LU_SCOPE' : `reserved scope [${hex(scope)}]`;
}

/** A reservation key as sg_persist prints it: "0xaa". */
export function formatReservationKey(key: bigint): string {
  return `0x${key.toString(16)}`;
}
