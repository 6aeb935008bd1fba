/**
 * PERSISTENT RESERVE OUT (spc4r17 6.14): the CDB and the two parameter list
 * formats, both ways. Pure.
 *
 * Decoders read the fixed fields of anything long enough to hold them (a
 * multipath map forwards lists verbatim and lets the device judge them); the
 * *Problem functions say whether the lengths add up, for those that judge.
 */
import { LU_SCOPE, PR_CDB_LENGTH } from './pr-codes.js';
import { bufferView, requireLength } from './pr-data.js';
import { Opcode } from './status.js';

/** The fixed part of every parameter list: the basic list without SPEC_I_PT, or REGISTER AND MOVE's header. */
export const BASIC_PARAMETER_LIST_LENGTH = 24;
/** The basic list with SPEC_I_PT: the 24 bytes plus TRANSPORTID PARAMETER DATA LENGTH. */
export const SPEC_I_PT_HEADER_LENGTH = 28;
export const REGISTER_AND_MOVE_HEADER_LENGTH = 24;

const EMPTY: Buffer = Buffer.alloc(0);

// ---------------------------------------------------------------------------
// CDB

export interface PrOutCdb {
  /** SERVICE ACTION, byte 1 bits 4-0. */
  readonly action: number;
  /** Byte 2 bits 7-4. */
  readonly scope: number;
  /** Byte 2 bits 3-0. */
  readonly type: number;
  /** PARAMETER LIST LENGTH, the 32 bits of bytes 5-8 (QEMU frames by bytes 7-8 only). */
  readonly parameterListLength: number;
}

function requireField(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`${name} ${value} must be an integer 0..${max}`);
}

/** A PR OUT CDB, zero-padded to `length` bytes (10, or QEMU's 16). SCOPE defaults to LU_SCOPE, TYPE to 0. */
export function encodePrOutCdb(
  cdb: Omit<PrOutCdb, 'scope' | 'type'> & { readonly scope?: number; readonly type?: number },
  length = PR_CDB_LENGTH,
): Buffer {
  if (length < PR_CDB_LENGTH) throw new RangeError(`a PR OUT CDB has ${PR_CDB_LENGTH} bytes, not ${length}`);
  const scope = cdb.scope ?? LU_SCOPE;
  const type = cdb.type ?? 0;
  requireField('service action', cdb.action, 0x1f);
  requireField('SCOPE', scope, 0x0f);
  requireField('TYPE', type, 0x0f);
  const out = Buffer.alloc(length);
  out[0] = Opcode.PERSISTENT_RESERVE_OUT;
  out[1] = cdb.action;
  out[2] = (scope << 4) | type;
  out.writeUInt32BE(cdb.parameterListLength, 5);
  return out;
}

/** The fields of a PR OUT CDB; the opcode is not checked. */
export function decodePrOutCdb(cdb: Uint8Array): PrOutCdb {
  const buf = requireLength(cdb, PR_CDB_LENGTH, 'PR OUT CDB', `it needs ${PR_CDB_LENGTH}`);
  return { action: buf[1]! & 0x1f, scope: buf[2]! >> 4, type: buf[2]! & 0x0f, parameterListLength: buf.readUInt32BE(5) };
}

// ---------------------------------------------------------------------------
// What can be wrong with a parameter list's lengths

export type ParameterListProblemKind =
  /** Shorter than its fixed part (24 bytes, 28 with SPEC_I_PT). */
  | 'short'
  /** More than 24 bytes without SPEC_I_PT. */
  | 'excess'
  /** TRANSPORTID PARAMETER DATA LENGTH disagrees with the bytes that follow it. */
  | 'transport-id-length';

export interface ParameterListProblem {
  readonly kind: ParameterListProblemKind;
  /** One line, for logs and a validator's report. */
  readonly message: string;
}

const problem = (kind: ParameterListProblemKind, message: string): ParameterListProblem => ({ kind, message });

function transportIdLengthProblem(list: Buffer, header: number, lengthAt: number): ParameterListProblem | null {
  const declared = list.readUInt32BE(lengthAt);
  if (header + declared === list.length) return null;
  return problem('transport-id-length', `TRANSPORTID PARAMETER DATA LENGTH ${declared} does not match the ${list.length - header} bytes after the ${header}-byte header`);
}

// ---------------------------------------------------------------------------
// Basic parameter list: every service action but REGISTER AND MOVE (spc4r17 6.14.3)

export interface BasicParameters {
  readonly reservationKey: bigint;
  readonly serviceActionKey: bigint;
  readonly specIPt: boolean;
  readonly allTgPt: boolean;
  readonly aptpl: boolean;
  /** SPEC_I_PT: the TransportIDs, back to back (see decodeTransportIdList); empty otherwise. */
  readonly transportIdData: Buffer;
}

/** What the encoder takes: absent keys are 0, absent flags clear. */
export type BasicParametersFields = { readonly [K in keyof BasicParameters]?: K extends 'transportIdData' ? Uint8Array : BasicParameters[K] };

/** 24 bytes, or with SPEC_I_PT 28 plus the TransportID data. */
export function encodeBasicParameters(p: BasicParametersFields): Buffer {
  const transportIds = p.transportIdData ?? EMPTY;
  if (!p.specIPt && transportIds.length > 0) throw new RangeError('TransportIDs need SPEC_I_PT');
  const out = Buffer.alloc(p.specIPt ? SPEC_I_PT_HEADER_LENGTH + transportIds.length : BASIC_PARAMETER_LIST_LENGTH);
  out.writeBigUInt64BE(p.reservationKey ?? 0n, 0);
  out.writeBigUInt64BE(p.serviceActionKey ?? 0n, 8);
  out[20] = (p.specIPt ? 0x08 : 0) | (p.allTgPt ? 0x04 : 0) | (p.aptpl ? 0x01 : 0);
  if (p.specIPt) {
    out.writeUInt32BE(transportIds.length, BASIC_PARAMETER_LIST_LENGTH);
    out.set(transportIds, SPEC_I_PT_HEADER_LENGTH);
  }
  return out;
}

/** The fields of a list of at least 24 bytes, lengths unchecked (basicParametersProblem checks them). */
export function decodeBasicParameters(list: Uint8Array): BasicParameters {
  const buf = requireLength(list, BASIC_PARAMETER_LIST_LENGTH, 'PR OUT parameter list', `its ${BASIC_PARAMETER_LIST_LENGTH}-byte fixed part does not fit`);
  const flags = buf[20]!;
  const specIPt = (flags & 0x08) !== 0;
  let transportIdData = EMPTY;
  if (specIPt && buf.length >= SPEC_I_PT_HEADER_LENGTH) {
    const end = Math.min(buf.length, SPEC_I_PT_HEADER_LENGTH + buf.readUInt32BE(BASIC_PARAMETER_LIST_LENGTH));
    transportIdData = buf.subarray(SPEC_I_PT_HEADER_LENGTH, end);
  }
  return {
    reservationKey: buf.readBigUInt64BE(0),
    serviceActionKey: buf.readBigUInt64BE(8),
    specIPt,
    allTgPt: (flags & 0x04) !== 0,
    aptpl: (flags & 0x01) !== 0,
    transportIdData,
  };
}

/** Why the list's lengths do not add up, or null when they do. */
export function basicParametersProblem(list: Uint8Array): ParameterListProblem | null {
  const buf = bufferView(list);
  if (buf.length < BASIC_PARAMETER_LIST_LENGTH) {
    return problem('short', `the parameter list is ${buf.length} bytes, shorter than its ${BASIC_PARAMETER_LIST_LENGTH}-byte fixed part`);
  }
  const specIPt = (buf[20]! & 0x08) !== 0;
  if (!specIPt) {
    if (buf.length === BASIC_PARAMETER_LIST_LENGTH) return null;
    return problem('excess', `the parameter list is ${buf.length} bytes; without SPEC_I_PT it has ${BASIC_PARAMETER_LIST_LENGTH}`);
  }
  if (buf.length < SPEC_I_PT_HEADER_LENGTH) {
    return problem('short', `the parameter list is ${buf.length} bytes, shorter than the ${SPEC_I_PT_HEADER_LENGTH} bytes SPEC_I_PT needs`);
  }
  return transportIdLengthProblem(buf, SPEC_I_PT_HEADER_LENGTH, BASIC_PARAMETER_LIST_LENGTH);
}

// ---------------------------------------------------------------------------
// REGISTER AND MOVE parameter list (spc4r17 6.14.4)

export interface RegisterAndMoveParameters {
  readonly reservationKey: bigint;
  readonly serviceActionKey: bigint;
  readonly unreg: boolean;
  readonly aptpl: boolean;
  readonly relativeTargetPort: number;
  /** The destination initiator's TransportID. */
  readonly transportId: Buffer;
}

/** What the encoder takes: absent keys are 0, absent flags clear. */
export type RegisterAndMoveParametersFields = Partial<Pick<RegisterAndMoveParameters, 'reservationKey' | 'serviceActionKey' | 'unreg' | 'aptpl'>> & {
  readonly relativeTargetPort: number;
  readonly transportId: Uint8Array;
};

export function encodeRegisterAndMoveParameters(p: RegisterAndMoveParametersFields): Buffer {
  const out = Buffer.alloc(REGISTER_AND_MOVE_HEADER_LENGTH + p.transportId.length);
  out.writeBigUInt64BE(p.reservationKey ?? 0n, 0);
  out.writeBigUInt64BE(p.serviceActionKey ?? 0n, 8);
  out[17] = (p.unreg ? 0x02 : 0) | (p.aptpl ? 0x01 : 0);
  out.writeUInt16BE(p.relativeTargetPort, 18);
  out.writeUInt32BE(p.transportId.length, 20);
  out.set(p.transportId, REGISTER_AND_MOVE_HEADER_LENGTH);
  return out;
}

/** The fields of a list of at least 24 bytes, lengths unchecked (registerAndMoveParametersProblem checks them). */
export function decodeRegisterAndMoveParameters(list: Uint8Array): RegisterAndMoveParameters {
  const buf = requireLength(list, REGISTER_AND_MOVE_HEADER_LENGTH, 'REGISTER AND MOVE parameter list', `its ${REGISTER_AND_MOVE_HEADER_LENGTH}-byte header does not fit`);
  const end = Math.min(buf.length, REGISTER_AND_MOVE_HEADER_LENGTH + buf.readUInt32BE(20));
  return {
    reservationKey: buf.readBigUInt64BE(0),
    serviceActionKey: buf.readBigUInt64BE(8),
    unreg: (buf[17]! & 0x02) !== 0,
    aptpl: (buf[17]! & 0x01) !== 0,
    relativeTargetPort: buf.readUInt16BE(18),
    transportId: buf.subarray(REGISTER_AND_MOVE_HEADER_LENGTH, end),
  };
}

/** Why the list's lengths do not add up, or null when they do. */
export function registerAndMoveParametersProblem(list: Uint8Array): ParameterListProblem | null {
  const buf = bufferView(list);
  if (buf.length < REGISTER_AND_MOVE_HEADER_LENGTH) {
    return problem('short', `the parameter list is ${buf.length} bytes, shorter than its ${REGISTER_AND_MOVE_HEADER_LENGTH}-byte header`);
  }
  return transportIdLengthProblem(buf, REGISTER_AND_MOVE_HEADER_LENGTH, 20);
}
