/**
 * TransportIDs: how SCSI persistent reservations name an initiator port (SPC-4
 * "TransportID identifiers"; the layouts Linux LIO reads and writes in
 * drivers/target/target_core_fabric_lib.c). Decoding from PR OUT parameter
 * lists, encoding for READ FULL STATUS, the plain-object form of the APTPL
 * state file, and the initiator names of the configuration and the CLI.
 */

/** An initiator port. Hex fields are stored as lowercase digits without separators. */
export type TransportId =
  | { readonly protocol: 'iscsi'; readonly name: string; readonly isid: string | null }
  | { readonly protocol: 'fc'; readonly wwpn: string }
  | { readonly protocol: 'sas'; readonly address: string };

/** Outcome of decoding untrusted input: the value, or a message saying what is wrong. */
export type Decoded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

/** A TransportID read from a byte stream, with how many bytes it occupied. */
export interface DecodedTransportId {
  readonly id: TransportId;
  readonly length: number;
}

const PROTOCOL_FC = 0x0;
const PROTOCOL_ISCSI = 0x5;
const PROTOCOL_SAS = 0x6;
const FIXED_TRANSPORT_ID_LENGTH = 24;
const ISCSI_HEADER_LENGTH = 4;
/** SPC-4: ADDITIONAL LENGTH is at least 20, so an iSCSI TransportID is never shorter than 24 bytes. */
const ISCSI_MIN_ADDITIONAL_LENGTH = 20;
/** RFC 3720 §3.2.6.1 caps iSCSI names at 223 bytes of UTF-8. */
const ISCSI_NAME_MAX_BYTES = 223;
const ISID_SEPARATOR = ',i,0x';
const ISID_PATTERN = /^[0-9a-f]{12}$/;
const WWN_PATTERN = /^[0-9a-f]{16}$/;
const COLON_WWN_PATTERN = /^[0-9a-f]{2}(?::[0-9a-f]{2}){7}$/;

const utf8 = new TextDecoder('utf-8', { fatal: true });

function ok<T>(value: T): Decoded<T> {
  return { ok: true, value };
}

function failure<T>(error: string): Decoded<T> {
  return { ok: false, error };
}

/** Why `name` is not acceptable as an iSCSI name, or null if it is. */
function iscsiNameProblem(name: string): string | null {
  if (name.length === 0) return 'is empty';
  if (Buffer.byteLength(name, 'utf8') > ISCSI_NAME_MAX_BYTES) {
    return `is longer than ${ISCSI_NAME_MAX_BYTES} bytes`;
  }
  // Commas would make the ",i,0x<ISID>" port-name form ambiguous; RFC 3720 names never contain them.
  if (/[\s,\u0000-\u001f\u007f]/u.test(name)) return 'contains whitespace, a control character or a comma';
  return null;
}

/** Splits "name" or "name,i,0x<ISID>" into its parts, validating both. */
function splitIscsiPortName(text: string): Decoded<{ name: string; isid: string | null }> {
  const at = text.toLowerCase().indexOf(ISID_SEPARATOR);
  const name = at < 0 ? text : text.slice(0, at);
  const isid = at < 0 ? null : text.slice(at + ISID_SEPARATOR.length).toLowerCase();
  const problem = iscsiNameProblem(name);
  if (problem !== null) return failure(`iSCSI name ${JSON.stringify(name)} ${problem}`);
  if (isid !== null && !ISID_PATTERN.test(isid)) {
    return failure(`ISID ${JSON.stringify(isid)} must be 12 hex digits`);
  }
  return ok({ name, isid });
}

function decodeIscsi(bytes: Uint8Array): Decoded<DecodedTransportId> {
  const formatCode = bytes[0]! >> 6;
  if (formatCode > 1) return failure(`iSCSI TransportID format code ${formatCode} is not defined`);
  if (bytes.length < ISCSI_HEADER_LENGTH) return failure('iSCSI TransportID header is truncated');
  const additionalLength = (bytes[2]! << 8) | bytes[3]!;
  if (additionalLength < ISCSI_MIN_ADDITIONAL_LENGTH || additionalLength % 4 !== 0) {
    return failure(`iSCSI TransportID ADDITIONAL LENGTH ${additionalLength} must be a multiple of 4 and at least 20`);
  }
  const length = ISCSI_HEADER_LENGTH + additionalLength;
  if (bytes.length < length) return failure('iSCSI TransportID extends beyond the TransportID data');
  const field = bytes.subarray(ISCSI_HEADER_LENGTH, length);
  const nul = field.indexOf(0);
  if (nul < 0) return failure('iSCSI name is not NUL-terminated');
  if (field.subarray(nul).some((b) => b !== 0)) return failure('iSCSI name padding is not all NUL bytes');
  let text: string;
  try {
    text = utf8.decode(field.subarray(0, nul));
  } catch {
    return failure('iSCSI name is not valid UTF-8');
  }
  const parts = splitIscsiPortName(text);
  if (!parts.ok) return parts;
  // Format 00b carries the node name only, 01b the port name with its ISID (SPC-4, iSCSI TransportID).
  if ((formatCode === 1) !== (parts.value.isid !== null)) {
    return failure(
      formatCode === 1 ? 'iSCSI port-name TransportID lacks ",i,0x<ISID>"' : 'iSCSI device-name TransportID carries an ISID',
    );
  }
  return ok({ id: { protocol: 'iscsi', ...parts.value }, length });
}

function decodeFixed(bytes: Uint8Array, protocol: 'fc' | 'sas'): Decoded<DecodedTransportId> {
  if (bytes[0]! >> 6 !== 0) return failure(`${protocol.toUpperCase()} TransportID format code must be 0`);
  if (bytes.length < FIXED_TRANSPORT_ID_LENGTH) {
    return failure(`${protocol.toUpperCase()} TransportID extends beyond the TransportID data`);
  }
  // SPC-4: the N_Port name sits at bytes 8-15, the SAS address at bytes 4-11.
  const start = protocol === 'fc' ? 8 : 4;
  const hex = Buffer.from(bytes.subarray(start, start + 8)).toString('hex');
  const id: TransportId = protocol === 'fc' ? { protocol, wwpn: hex } : { protocol, address: hex };
  return ok({ id, length: FIXED_TRANSPORT_ID_LENGTH });
}

/**
 * Decodes the TransportID at the start of `bytes`; anything after it is left
 * alone. `bytes` must end where the enclosing TransportID data ends, so a
 * TransportID straddling that end is reported as an error.
 */
export function decodeTransportId(bytes: Uint8Array): Decoded<DecodedTransportId> {
  if (bytes.length === 0) return failure('TransportID is missing');
  const protocol = bytes[0]! & 0x0f;
  switch (protocol) {
    case PROTOCOL_ISCSI:
      return decodeIscsi(bytes);
    case PROTOCOL_FC:
      return decodeFixed(bytes, 'fc');
    case PROTOCOL_SAS:
      return decodeFixed(bytes, 'sas');
    default:
      return failure(`TransportID protocol identifier ${protocol} is not supported`);
  }
}

/**
 * Decodes TransportIDs that follow each other up to the end of `bytes`, as
 * SPEC_I_PT carries them; the first that does not decode is the error.
 */
export function decodeTransportIdList(bytes: Uint8Array): Decoded<TransportId[]> {
  const ids: TransportId[] = [];
  for (let rest = bytes; rest.length > 0; ) {
    const decoded = decodeTransportId(rest);
    if (!decoded.ok) return decoded;
    ids.push(decoded.value.id);
    rest = rest.subarray(decoded.value.length);
  }
  return ok(ids);
}

/** Encodes a TransportID as READ FULL STATUS reports it (spc4r17 6.13.5). */
export function encodeTransportId(id: TransportId): Buffer {
  switch (id.protocol) {
    case 'iscsi': {
      const text = id.isid === null ? id.name : `${id.name}${ISID_SEPARATOR}${id.isid}`;
      const nameBytes = Buffer.from(text, 'utf8');
      const padded = Math.max(ISCSI_MIN_ADDITIONAL_LENGTH, Math.ceil((nameBytes.length + 1) / 4) * 4);
      const out = Buffer.alloc(ISCSI_HEADER_LENGTH + padded);
      out[0] = ((id.isid === null ? 0 : 1) << 6) | PROTOCOL_ISCSI;
      out.writeUInt16BE(padded, 2);
      nameBytes.copy(out, ISCSI_HEADER_LENGTH);
      return out;
    }
    case 'fc': {
      const out = Buffer.alloc(FIXED_TRANSPORT_ID_LENGTH);
      out[0] = PROTOCOL_FC;
      Buffer.from(id.wwpn, 'hex').copy(out, 8);
      return out;
    }
    case 'sas': {
      const out = Buffer.alloc(FIXED_TRANSPORT_ID_LENGTH);
      out[0] = PROTOCOL_SAS;
      Buffer.from(id.address, 'hex').copy(out, 4);
      return out;
    }
  }
}

/**
 * A string that is equal for two TransportIDs exactly when they name the same
 * initiator port. iSCSI names compare case-insensitively (RFC 3722 folds case).
 */
export function transportIdIdentity(id: TransportId): string {
  switch (id.protocol) {
    case 'iscsi':
      return `iscsi:${id.name.toLowerCase()}${id.isid === null ? '' : `${ISID_SEPARATOR}${id.isid}`}`;
    case 'fc':
      return `fc:${id.wwpn}`;
    case 'sas':
      return `sas:${id.address}`;
  }
}

/**
 * The initiator-name syntax parseInitiatorName accepts, so that a name shown
 * by READ FULL STATUS can be pasted into --transport-id or a simulator config.
 */
export function initiatorName(id: TransportId): string {
  switch (id.protocol) {
    case 'iscsi':
      return id.isid === null ? id.name : `${id.name}${ISID_SEPARATOR}${id.isid}`;
    case 'fc':
      return `fc.${id.wwpn}`;
    case 'sas':
      return `naa.${id.address}`;
  }
}

function hasExactKeys(value: object, keys: readonly string[]): boolean {
  const actual = Object.keys(value);
  return actual.length === keys.length && keys.every((k) => Object.hasOwn(value, k));
}

/**
 * Validates a TransportID in its plain-object form (as stored in the APTPL
 * state file). Error messages start with `where`.
 */
export function transportIdFromPlain(value: unknown, where: string): Decoded<TransportId> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return failure(`${where} must be an object`);
  }
  const record = value as Record<string, unknown>;
  switch (record['protocol']) {
    case 'iscsi': {
      if (!hasExactKeys(record, ['protocol', 'name', 'isid'])) {
        return failure(`${where} must have exactly the keys protocol, name, isid`);
      }
      const { name, isid } = record;
      if (typeof name !== 'string') return failure(`${where}.name must be a string`);
      const problem = iscsiNameProblem(name);
      if (problem !== null) return failure(`${where}.name ${problem}`);
      if (isid !== null && (typeof isid !== 'string' || !ISID_PATTERN.test(isid))) {
        return failure(`${where}.isid must be null or 12 lowercase hex digits`);
      }
      return ok({ protocol: 'iscsi', name, isid });
    }
    case 'fc':
    case 'sas': {
      const field = record['protocol'] === 'fc' ? 'wwpn' : 'address';
      if (!hasExactKeys(record, ['protocol', field])) {
        return failure(`${where} must have exactly the keys protocol, ${field}`);
      }
      const hex = record[field];
      if (typeof hex !== 'string' || !WWN_PATTERN.test(hex)) {
        return failure(`${where}.${field} must be 16 lowercase hex digits`);
      }
      return ok(record['protocol'] === 'fc' ? { protocol: 'fc', wwpn: hex } : { protocol: 'sas', address: hex });
    }
    default:
      return failure(`${where}.protocol must be "iscsi", "fc" or "sas"`);
  }
}

function parseWwn(text: string): string | null {
  const lower = text.toLowerCase();
  if (WWN_PATTERN.test(lower)) return lower;
  if (COLON_WWN_PATTERN.test(lower)) return lower.replaceAll(':', '');
  return null;
}

const INITIATOR_NAME_FORMS =
  'expected an iSCSI name (iqn., eui., naa.), a SAS address (naa.<16 hex digits>) ' +
  'or an FC WWPN (fc. or wwpn: followed by 16 hex digits or 8 colon-separated octets)';

/**
 * Parses an initiator name from the configuration. iSCSI names may carry a
 * ",i,0x<ISID>" suffix to name one initiator port. Throws on anything else.
 */
export function parseInitiatorName(text: string): TransportId {
  const reject = (why: string): never => {
    throw new Error(`initiator name ${JSON.stringify(text)} ${why}`);
  };
  const lower = text.toLowerCase();
  const iscsi = (): TransportId => {
    const parts = splitIscsiPortName(text);
    if (!parts.ok) return reject(`is invalid: ${parts.error}`);
    // Every accepted prefix (iqn., eui., naa.) is 4 characters long.
    if (parts.value.name.length <= 4) return reject('is invalid: nothing follows the iSCSI name prefix');
    return { protocol: 'iscsi', ...parts.value };
  };
  if (lower.startsWith('iqn.')) return iscsi();
  if (lower.startsWith('eui.')) {
    // RFC 3720 §3.2.6.3.2: an EUI-64 name is exactly 16 hex digits.
    const eui = lower.slice(4).split(ISID_SEPARATOR)[0]!;
    return WWN_PATTERN.test(eui) ? iscsi() : reject('is invalid: eui. must be followed by 16 hex digits');
  }
  if (lower.startsWith('naa.')) {
    const rest = lower.slice(4);
    if (WWN_PATTERN.test(rest)) return { protocol: 'sas', address: rest };
    // A 128-bit NAA (32 hex digits) cannot be a SAS address, only an iSCSI name (RFC 3720 §3.2.6.3.3).
    if (/[^0-9a-f]/.test(rest) || rest.length === 32) return iscsi();
    return reject(`is invalid: naa. must be followed by 16 hex digits (SAS) or be an iSCSI name`);
  }
  for (const prefix of ['fc.', 'wwpn:']) {
    if (lower.startsWith(prefix)) {
      const wwpn = parseWwn(text.slice(prefix.length));
      return wwpn === null ? reject(`is invalid: ${INITIATOR_NAME_FORMS}`) : { protocol: 'fc', wwpn };
    }
  }
  return reject(`is not recognised: ${INITIATOR_NAME_FORMS}`);
}
