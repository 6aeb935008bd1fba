/**
 * PERSISTENT RESERVE IN (spc4r17 6.13): the CDB and the parameter data of each
 * service action, both ways. Pure.
 *
 * Decoders accept truncated data, which is normal: the device returns what
 * fits the ALLOCATION LENGTH while the length fields keep describing all of it
 * (spc4r17 6.13.1). Whatever fits is reported and `truncated` says that more
 * was announced. Data too short for even the fixed header throws PrDataError.
 * Encoders produce the complete data; the device side cuts it to the
 * allocation length.
 */
import { Opcode } from './status.js';
import { PR_CDB_LENGTH } from './pr-codes.js';
import { requireLength } from './pr-data.js';
import { decodeTransportId, encodeTransportId, type TransportId } from './transport-id.js';

const HEADER_LENGTH = 8;
const KEY_LENGTH = 8;
const RESERVATION_DESCRIPTOR_LENGTH = 16;
const FULL_STATUS_DESCRIPTOR_HEADER = 24;
const CAPABILITIES_LENGTH = 8;
const CAPABILITY_FLAGS_END = 4;
const TYPE_MASK_END = 6;

// ---------------------------------------------------------------------------
// CDB

export interface PrInCdb {
  /** SERVICE ACTION, byte 1 bits 4-0. */
  readonly action: number;
  /** ALLOCATION LENGTH, bytes 7-8. */
  readonly allocationLength: number;
}

/** A PR IN CDB, zero-padded to `length` bytes (10, or QEMU's 16). */
export function encodePrInCdb(cdb: PrInCdb, length = PR_CDB_LENGTH): Buffer {
  if (length < PR_CDB_LENGTH) throw new RangeError(`a PR IN CDB has ${PR_CDB_LENGTH} bytes, not ${length}`);
  if (!Number.isInteger(cdb.action) || cdb.action < 0 || cdb.action > 0x1f) {
    throw new RangeError(`service action ${cdb.action} does not fit in 5 bits`);
  }
  const out = Buffer.alloc(length);
  out[0] = Opcode.PERSISTENT_RESERVE_IN;
  out[1] = cdb.action;
  out.writeUInt16BE(cdb.allocationLength, 7);
  return out;
}

/** The fields of a PR IN CDB; the opcode is not checked. */
export function decodePrInCdb(cdb: Uint8Array): PrInCdb {
  const buf = requireLength(cdb, PR_CDB_LENGTH, 'PR IN CDB', `it needs ${PR_CDB_LENGTH}`);
  return { action: buf[1]! & 0x1f, allocationLength: buf.readUInt16BE(7) };
}

// ---------------------------------------------------------------------------
// Common header: PRGENERATION and ADDITIONAL LENGTH

export interface PrInHeader {
  readonly generation: number;
  readonly additionalLength: number;
}

function decodeHeader(data: Uint8Array, what: string): PrInHeader & { buf: Buffer } {
  const buf = requireLength(data, HEADER_LENGTH, `${what} data`, `its ${HEADER_LENGTH}-byte header does not fit`);
  return { buf, generation: buf.readUInt32BE(0), additionalLength: buf.readUInt32BE(4) };
}

/** The header every PR IN reply but REPORT CAPABILITIES starts with (spc4r17 6.13.2-6.13.5). */
export function decodePrInHeader(data: Uint8Array): PrInHeader {
  const { generation, additionalLength } = decodeHeader(data, 'PR IN');
  return { generation, additionalLength };
}

function withHeader(generation: number, body: Buffer): Buffer {
  const out = Buffer.alloc(HEADER_LENGTH + body.length);
  out.writeUInt32BE(generation, 0);
  out.writeUInt32BE(body.length, 4);
  body.copy(out, HEADER_LENGTH);
  return out;
}

/** SCOPE in bits 7-4, TYPE in bits 3-0, as READ RESERVATION and READ FULL STATUS carry them. */
function scopeType(scope: number, type: number): number {
  if (scope < 0 || scope > 0x0f || type < 0 || type > 0x0f) throw new RangeError(`SCOPE ${scope} / TYPE ${type} do not fit in 4 bits each`);
  return (scope << 4) | type;
}

// ---------------------------------------------------------------------------
// READ KEYS (spc4r17 6.13.2)

export interface ReadKeys {
  readonly generation: number;
  readonly additionalLength: number;
  /** One per registered I_T nexus, in the device's order; only those that fit. */
  readonly keys: bigint[];
  /** How many keys ADDITIONAL LENGTH announces. */
  readonly announcedKeys: number;
  readonly truncated: boolean;
}

export function encodeReadKeys(reply: Pick<ReadKeys, 'generation' | 'keys'>): Buffer {
  const body = Buffer.alloc(KEY_LENGTH * reply.keys.length);
  reply.keys.forEach((key, i) => body.writeBigUInt64BE(key, KEY_LENGTH * i));
  return withHeader(reply.generation, body);
}

export function decodeReadKeys(data: Uint8Array): ReadKeys {
  const { buf, generation, additionalLength } = decodeHeader(data, 'READ KEYS');
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

// ---------------------------------------------------------------------------
// READ RESERVATION (spc4r17 6.13.3)

/** A held reservation. */
export interface ReservationDescriptor {
  /** The holder's key; 0 for the all-registrants types. */
  readonly key: bigint;
  readonly scope: number;
  readonly type: number;
}

/** Each field null where the allocation length cut it off. */
export type TruncatedReservation = { readonly [K in keyof ReservationDescriptor]: ReservationDescriptor[K] | null };

export interface ReadReservation {
  readonly generation: number;
  readonly additionalLength: number;
  /** Null when no reservation is held (ADDITIONAL LENGTH 0). */
  readonly reservation: TruncatedReservation | null;
  readonly truncated: boolean;
}

export function encodeReadReservation(reply: { readonly generation: number; readonly reservation: ReservationDescriptor | null }): Buffer {
  const r = reply.reservation;
  const body = Buffer.alloc(r === null ? 0 : RESERVATION_DESCRIPTOR_LENGTH);
  if (r !== null) {
    body.writeBigUInt64BE(r.key, 0);
    // Bytes 8-11 are obsolete, byte 12 reserved; SCOPE/TYPE is byte 13 of the descriptor.
    body[13] = scopeType(r.scope, r.type);
  }
  return withHeader(reply.generation, body);
}

export function decodeReadReservation(data: Uint8Array): ReadReservation {
  const { buf, generation, additionalLength } = decodeHeader(data, 'READ RESERVATION');
  const truncated = buf.length < HEADER_LENGTH + additionalLength;
  if (additionalLength === 0) return { generation, additionalLength, reservation: null, truncated };
  const key = buf.length >= HEADER_LENGTH + KEY_LENGTH ? buf.readBigUInt64BE(HEADER_LENGTH) : null;
  const at = HEADER_LENGTH + 13;
  const packed = buf.length > at && additionalLength >= RESERVATION_DESCRIPTOR_LENGTH ? buf[at]! : null;
  return {
    generation,
    additionalLength,
    reservation: { key, scope: packed === null ? null : packed >> 4, type: packed === null ? null : packed & 0x0f },
    truncated,
  };
}

// ---------------------------------------------------------------------------
// REPORT CAPABILITIES (spc4r17 6.13.4)

/** PERSISTENT RESERVATION TYPE MASK: which TYPEs the device supports. */
export interface TypeMask {
  readonly wrEx: boolean;
  readonly exAc: boolean;
  readonly wrExRo: boolean;
  readonly exAcRo: boolean;
  readonly wrExAr: boolean;
  readonly exAcAr: boolean;
}

export interface ReportCapabilities {
  /** LENGTH field; 8 from every conforming device. */
  readonly length: number;
  readonly rlrC: boolean;
  readonly crh: boolean;
  readonly sipC: boolean;
  readonly atpC: boolean;
  readonly ptplC: boolean;
  readonly tmv: boolean;
  /** ALLOW COMMANDS, 3 bits. */
  readonly allowCommands: number;
  readonly ptplA: boolean;
  /** Null when bytes 4-5 were cut off. Meaningful only when `tmv` is set. */
  readonly typeMask: TypeMask | null;
  readonly truncated: boolean;
}

/** What the encoder needs: every capability, the type mask included. */
export type ReportCapabilitiesFields = Omit<ReportCapabilities, 'length' | 'typeMask' | 'truncated'> & { readonly typeMask: TypeMask };

const bit = (set: boolean, value: number): number => (set ? value : 0);

export function encodeReportCapabilities(c: ReportCapabilitiesFields): Buffer {
  if (!Number.isInteger(c.allowCommands) || c.allowCommands < 0 || c.allowCommands > 7) {
    throw new RangeError(`ALLOW COMMANDS ${c.allowCommands} does not fit in 3 bits`);
  }
  const out = Buffer.alloc(CAPABILITIES_LENGTH);
  out.writeUInt16BE(CAPABILITIES_LENGTH, 0);
  out[2] = bit(c.rlrC, 0x80) | bit(c.crh, 0x10) | bit(c.sipC, 0x08) | bit(c.atpC, 0x04) | bit(c.ptplC, 0x01);
  out[3] = bit(c.tmv, 0x80) | (c.allowCommands << 4) | bit(c.ptplA, 0x01);
  const m = c.typeMask;
  out[4] = bit(m.wrExAr, 0x80) | bit(m.exAcRo, 0x40) | bit(m.wrExRo, 0x20) | bit(m.exAc, 0x08) | bit(m.wrEx, 0x02);
  out[5] = bit(m.exAcAr, 0x01);
  return out;
}

export function decodeReportCapabilities(data: Uint8Array): ReportCapabilities {
  const buf = requireLength(data, CAPABILITY_FLAGS_END, 'REPORT CAPABILITIES data', 'its flags (bytes 2-3) do not fit');
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
  const length = buf.readUInt16BE(0);
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

// ---------------------------------------------------------------------------
// READ FULL STATUS (spc4r17 6.13.5)

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

export interface ReadFullStatus {
  readonly generation: number;
  readonly additionalLength: number;
  /** Every descriptor whose fixed 24 bytes fit. */
  readonly descriptors: FullStatusDescriptor[];
  readonly truncated: boolean;
}

/** One registered I_T nexus, as the encoder takes it. */
export type FullStatusRegistration = Pick<FullStatusDescriptor, 'key' | 'allTgPt' | 'rHolder' | 'scope' | 'type' | 'relativeTargetPort'> & {
  readonly transportId: TransportId;
};

export function encodeReadFullStatus(reply: { readonly generation: number; readonly descriptors: readonly FullStatusRegistration[] }): Buffer {
  const descriptors = reply.descriptors.map((r) => {
    const transportId = encodeTransportId(r.transportId);
    const d = Buffer.alloc(FULL_STATUS_DESCRIPTOR_HEADER + transportId.length);
    d.writeBigUInt64BE(r.key, 0);
    d[12] = bit(r.allTgPt, 0x02) | bit(r.rHolder, 0x01);
    d[13] = scopeType(r.scope, r.type);
    d.writeUInt16BE(r.relativeTargetPort, 18);
    d.writeUInt32BE(transportId.length, 20);
    transportId.copy(d, FULL_STATUS_DESCRIPTOR_HEADER);
    return d;
  });
  return withHeader(reply.generation, Buffer.concat(descriptors));
}

export function decodeReadFullStatus(data: Uint8Array): ReadFullStatus {
  const { buf, generation, additionalLength } = decodeHeader(data, 'READ FULL STATUS');
  const announcedEnd = HEADER_LENGTH + additionalLength;
  const end = Math.min(buf.length, announcedEnd);
  const descriptors: FullStatusDescriptor[] = [];
  for (let at = HEADER_LENGTH; at + FULL_STATUS_DESCRIPTOR_HEADER <= end; ) {
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
