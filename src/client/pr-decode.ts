/**
 * Decoders of PERSISTENT RESERVE IN parameter data (spc4-pr-semantics.md §5)
 * into typed objects. Pure. Truncated data is normal (the allocation length
 * may be smaller than the data, §5.1): whatever fits is reported and
 * `truncated` says that the length fields promise more.
 */
import { decodeTransportId, type TransportId } from '../sim/transport-id.js';

/** The parameter data is too short to hold even its fixed header. */
export class PrDataError extends Error {
  override name = 'PrDataError';
}

const HEADER_LENGTH = 8;
const KEY_LENGTH = 8;
const RESERVATION_DESCRIPTOR_LENGTH = 16;
const FULL_STATUS_DESCRIPTOR_HEADER = 24;

const LU_SCOPE = 0;

/** sg_persist's names for the TYPE field; the gaps are obsolete or reserved codes. */
const TYPE_NAMES: Readonly<Record<number, string>> = {
  1: 'Write Exclusive',
  3: 'Exclusive Access',
  5: 'Write Exclusive, registrants only',
  6: 'Exclusive Access, registrants only',
  7: 'Write Exclusive, all registrants',
  8: 'Exclusive Access, all registrants',
};

export function typeName(type: number): string {
  return TYPE_NAMES[type] ?? `${type <= 4 ? 'obsolete' : 'reserved'} [0x${type.toString(16)}]`;
}

export function scopeName(scope: number): string {
  return scope === LU_SCOPE ? 'LU_SCOPE' : `reserved scope [0x${scope.toString(16)}]`;
}

/**
 * The initiator-name syntax parseInitiatorName accepts, so that a name shown
 * by READ FULL STATUS can be pasted into --transport-id or a simulator config.
 */
export function initiatorName(id: TransportId): string {
  switch (id.protocol) {
    case 'iscsi':
      return id.isid === null ? id.name : `${id.name},i,0x${id.isid}`;
    case 'fc':
      return `fc.${id.wwpn}`;
    case 'sas':
      return `naa.${id.address}`;
  }
}

function view(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

interface Header {
  generation: number;
  additionalLength: number;
}

function header(data: Uint8Array, what: string): Header {
  if (data.length < HEADER_LENGTH) {
    throw new PrDataError(`${what} data is ${data.length} bytes; its ${HEADER_LENGTH}-byte header does not fit`);
  }
  const buf = view(data);
  return { generation: buf.readUInt32BE(0), additionalLength: buf.readUInt32BE(4) };
}

export interface ReadKeys {
  readonly generation: number;
  readonly additionalLength: number;
  /** One per registered I_T nexus, in the device's order; only those that fit. */
  readonly keys: bigint[];
  /** How many keys ADDITIONAL LENGTH announces. */
  readonly announcedKeys: number;
  readonly truncated: boolean;
}

/** READ KEYS (§5.2). */
export function decodeReadKeys(data: Uint8Array): ReadKeys {
  const { generation, additionalLength } = header(data, 'READ KEYS');
  const buf = view(data);
  const end = Math.min(buf.length, HEADER_LENGTH + additionalLength);
  const keys: bigint[] = [];
  for (let at = HEADER_LENGTH; at + KEY_LENGTH <= end; at += KEY_LENGTH) keys.push(buf.readBigUInt64BE(at));
  return {
    generation,
    additionalLength,
    keys,
    announcedKeys: Math.floor(additionalLength / KEY_LENGTH),
    truncated: buf.length < HEADER_LENGTH + additionalLength,
  };
}

export interface Reservation {
  /** Holder's key; 0 for the all-registrants types. Null: cut off by the allocation length. */
  readonly key: bigint | null;
  readonly scope: number | null;
  readonly type: number | null;
}

export interface ReadReservation {
  readonly generation: number;
  readonly additionalLength: number;
  /** Null when no reservation is held (ADDITIONAL LENGTH 0). */
  readonly reservation: Reservation | null;
  readonly truncated: boolean;
}

/** READ RESERVATION (§5.3). */
export function decodeReadReservation(data: Uint8Array): ReadReservation {
  const { generation, additionalLength } = header(data, 'READ RESERVATION');
  const buf = view(data);
  const truncated = buf.length < HEADER_LENGTH + additionalLength;
  if (additionalLength === 0) return { generation, additionalLength, reservation: null, truncated };
  const key = buf.length >= HEADER_LENGTH + KEY_LENGTH ? buf.readBigUInt64BE(HEADER_LENGTH) : null;
  // Byte 21 of the data: SCOPE in bits 7-4, TYPE in bits 3-0.
  const scopeType = buf.length > 21 && additionalLength >= RESERVATION_DESCRIPTOR_LENGTH ? buf[21]! : null;
  return {
    generation,
    additionalLength,
    reservation: {
      key,
      scope: scopeType === null ? null : scopeType >> 4,
      type: scopeType === null ? null : scopeType & 0x0f,
    },
    truncated,
  };
}

export interface TypeMask {
  readonly wrEx: boolean;
  readonly exAc: boolean;
  readonly wrExRo: boolean;
  readonly exAcRo: boolean;
  readonly wrExAr: boolean;
  readonly exAcAr: boolean;
}

export interface Capabilities {
  /** LENGTH field; 8 from every conforming device. */
  readonly length: number;
  readonly rlrC: boolean;
  readonly crh: boolean;
  readonly sipC: boolean;
  readonly atpC: boolean;
  readonly ptplC: boolean;
  readonly tmv: boolean;
  readonly allowCommands: number;
  readonly ptplA: boolean;
  /** Null when bytes 4-5 were cut off. Meaningful only when `tmv` is set. */
  readonly typeMask: TypeMask | null;
  readonly truncated: boolean;
}

const CAPABILITY_FLAGS_END = 4;
const TYPE_MASK_END = 6;

/** REPORT CAPABILITIES (§5.4). */
export function decodeCapabilities(data: Uint8Array): Capabilities {
  if (data.length < CAPABILITY_FLAGS_END) {
    throw new PrDataError(`REPORT CAPABILITIES data is ${data.length} bytes; its flags (bytes 2-3) do not fit`);
  }
  const buf = view(data);
  const length = buf.readUInt16BE(0);
  const b2 = buf[2]!;
  const b3 = buf[3]!;
  let typeMask: TypeMask | null = null;
  if (buf.length >= TYPE_MASK_END) {
    const b4 = buf[4]!;
    typeMask = {
      wrEx: (b4 & 0x02) !== 0,
      exAc: (b4 & 0x08) !== 0,
      wrExRo: (b4 & 0x20) !== 0,
      exAcRo: (b4 & 0x40) !== 0,
      wrExAr: (b4 & 0x80) !== 0,
      exAcAr: (buf[5]! & 0x01) !== 0,
    };
  }
  return {
    length,
    rlrC: (b2 & 0x80) !== 0,
    crh: (b2 & 0x10) !== 0,
    sipC: (b2 & 0x08) !== 0,
    atpC: (b2 & 0x04) !== 0,
    ptplC: (b2 & 0x01) !== 0,
    tmv: (b3 & 0x80) !== 0,
    allowCommands: (b3 >> 4) & 0x07,
    ptplA: (b3 & 0x01) !== 0,
    typeMask,
    truncated: buf.length < length,
  };
}

export interface FullStatusDescriptor {
  readonly key: bigint;
  readonly allTgPt: boolean;
  readonly rHolder: boolean;
  /** SCOPE and TYPE are meaningful only when `rHolder` is set. */
  readonly scope: number;
  readonly type: number;
  /** Undefined by the standard when `allTgPt` is set. */
  readonly relativeTargetPort: number;
  /** ADDITIONAL DESCRIPTOR LENGTH: the TransportID's length. */
  readonly transportIdLength: number;
  /** Null when the TransportID is cut off or cannot be decoded (see transportIdError). */
  readonly transportId: TransportId | null;
  readonly transportIdError: string | null;
}

export interface FullStatus {
  readonly generation: number;
  readonly additionalLength: number;
  /** Every descriptor whose fixed 24 bytes fit. */
  readonly descriptors: FullStatusDescriptor[];
  readonly truncated: boolean;
}

/** READ FULL STATUS (§5.5). */
export function decodeFullStatus(data: Uint8Array): FullStatus {
  const { generation, additionalLength } = header(data, 'READ FULL STATUS');
  const buf = view(data);
  const announcedEnd = HEADER_LENGTH + additionalLength;
  const end = Math.min(buf.length, announcedEnd);
  const descriptors: FullStatusDescriptor[] = [];
  let at = HEADER_LENGTH;
  while (at + FULL_STATUS_DESCRIPTOR_HEADER <= end) {
    const transportIdLength = buf.readUInt32BE(at + 20);
    const tidStart = at + FULL_STATUS_DESCRIPTOR_HEADER;
    const tidEnd = tidStart + transportIdLength;
    let transportId: TransportId | null = null;
    let transportIdError: string | null = null;
    if (tidEnd > end) {
      transportIdError = tidEnd > announcedEnd ? 'TransportID extends beyond ADDITIONAL LENGTH' : 'TransportID cut off by the allocation length';
    } else {
      const decoded = decodeTransportId(buf.subarray(tidStart, tidEnd));
      if (decoded.ok) transportId = decoded.value.id;
      else transportIdError = decoded.error;
    }
    descriptors.push({
      key: buf.readBigUInt64BE(at),
      allTgPt: (buf[at + 12]! & 0x02) !== 0,
      rHolder: (buf[at + 12]! & 0x01) !== 0,
      scope: buf[at + 13]! >> 4,
      type: buf[at + 13]! & 0x0f,
      relativeTargetPort: buf.readUInt16BE(at + 18),
      transportIdLength,
      transportId,
      transportIdError,
    });
    at = tidEnd;
  }
  return { generation, additionalLength, descriptors, truncated: buf.length < announcedEnd };
}
