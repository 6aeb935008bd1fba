/**
 * The APTPL state file's schema: what a simulated logical unit keeps through
 * power loss with APTPL set (registrations, reservation, generation), its
 * validator, and the key encoding. Pure; state-store.ts reads and writes the
 * files, the engine produces and restores the state.
 */
import { isAllRegistrantsType, isPrType, LU_SCOPE, type PrTypeCode } from '../scsi/pr-codes.js';
import { transportIdFromPlain, transportIdIdentity, type TransportId } from '../scsi/transport-id.js';
import { nexusId, type Nexus } from './nexus.js';

export const PERSISTED_STATE_VERSION = 1;
const U32_LIMIT = 2 ** 32;

/** APTPL state file contents. Keys are 16 lowercase hex digits. */
export interface PersistedLunState {
  readonly version: typeof PERSISTED_STATE_VERSION;
  readonly generation: number;
  readonly aptpl: boolean;
  readonly registrations: readonly PersistedRegistration[];
  readonly reservation: PersistedReservation | null;
}

export interface PersistedRegistration {
  readonly initiator: TransportId;
  readonly targetPort: number;
  readonly key: string;
  readonly allTgPt: boolean;
}

export interface PersistedReservation {
  readonly type: PrTypeCode;
  readonly scope: typeof LU_SCOPE;
  /** The holding I_T nexus; null for the all-registrants types, where every registrant holds it. */
  readonly holder: Nexus | null;
}

/** A reservation key as the state file stores it: 16 lowercase hex digits. */
export function encodePersistedKey(key: bigint): string {
  return key.toString(16).padStart(16, '0');
}

export function decodePersistedKey(key: string): bigint {
  return BigInt(`0x${key}`);
}

function fail(path: string, problem: string): never {
  throw new Error(`invalid PR state: ${path} ${problem}`);
}

function asRecord(value: unknown, path: string, keys: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(path, 'must be an object');
  const record = value as Record<string, unknown>;
  for (const k of Object.keys(record)) {
    if (!keys.includes(k)) fail(`${path}.${k}`, 'is not a known field');
  }
  for (const k of keys) {
    if (!Object.hasOwn(record, k)) fail(`${path}.${k}`, 'is missing');
  }
  return record;
}

function asTargetPort(value: unknown, path: string): number {
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 0xffff) {
    fail(path, 'must be an integer 1..65535');
  }
  return value as number;
}

function asTransportId(value: unknown, path: string): TransportId {
  const decoded = transportIdFromPlain(value, path);
  if (!decoded.ok) throw new Error(`invalid PR state: ${decoded.error}`);
  return decoded.value;
}

function asNexus(value: unknown, path: string): Nexus {
  const record = asRecord(value, path, ['initiator', 'targetPort']);
  return {
    initiator: asTransportId(record['initiator'], `${path}.initiator`),
    targetPort: asTargetPort(record['targetPort'], `${path}.targetPort`),
  };
}

function asRegistration(value: unknown, path: string): PersistedRegistration {
  const record = asRecord(value, path, ['initiator', 'targetPort', 'key', 'allTgPt']);
  const key = record['key'];
  if (typeof key !== 'string' || !/^[0-9a-f]{16}$/.test(key) || /^0+$/.test(key)) {
    // 0 is never a registered key: REGISTER with it unregisters (spc4r17 5.7.7).
    fail(`${path}.key`, 'must be 16 lowercase hex digits and not zero');
  }
  if (typeof record['allTgPt'] !== 'boolean') fail(`${path}.allTgPt`, 'must be a boolean');
  return {
    initiator: asTransportId(record['initiator'], `${path}.initiator`),
    targetPort: asTargetPort(record['targetPort'], `${path}.targetPort`),
    key,
    allTgPt: record['allTgPt'],
  };
}

/**
 * Validates an APTPL state object (e.g. freshly JSON.parse'd), including its
 * internal consistency. Throws an Error naming the offending field.
 */
export function parsePersistedLunState(value: unknown): PersistedLunState {
  const root = asRecord(value, 'state', ['version', 'generation', 'aptpl', 'registrations', 'reservation']);
  if (root['version'] !== PERSISTED_STATE_VERSION) fail('state.version', `must be ${PERSISTED_STATE_VERSION}`);
  const generation = root['generation'];
  if (!Number.isInteger(generation) || (generation as number) < 0 || (generation as number) >= U32_LIMIT) {
    fail('state.generation', 'must be an integer 0..4294967295');
  }
  if (typeof root['aptpl'] !== 'boolean') fail('state.aptpl', 'must be a boolean');
  if (!Array.isArray(root['registrations'])) fail('state.registrations', 'must be an array');

  const registrations = root['registrations'].map((r: unknown, i) => asRegistration(r, `state.registrations[${i}]`));
  const groupKeys = new Map<string, string>();
  const seen = new Set<string>();
  registrations.forEach((r, i) => {
    const k = nexusId(r.initiator, r.targetPort);
    if (seen.has(k)) fail(`state.registrations[${i}]`, 'registers the same I_T nexus twice');
    seen.add(k);
    if (!r.allTgPt) return;
    const identity = transportIdIdentity(r.initiator);
    const groupKey = groupKeys.get(identity) ?? r.key;
    if (groupKey !== r.key) fail(`state.registrations[${i}].key`, 'differs from its ALL_TG_PT registration group');
    groupKeys.set(identity, groupKey);
  });

  let reservation: PersistedReservation | null = null;
  if (root['reservation'] !== null) {
    const record = asRecord(root['reservation'], 'state.reservation', ['type', 'scope', 'holder']);
    const type = record['type'];
    if (typeof type !== 'number' || !isPrType(type)) fail('state.reservation.type', 'must be 1, 3, 5, 6, 7 or 8');
    if (record['scope'] !== LU_SCOPE) fail('state.reservation.scope', 'must be 0 (LU_SCOPE)');
    let holder: Nexus | null = null;
    if (isAllRegistrantsType(type)) {
      if (record['holder'] !== null) fail('state.reservation.holder', 'must be null for an all-registrants type');
      if (registrations.length === 0) fail('state.reservation', 'is an all-registrants reservation without registrations');
    } else {
      holder = asNexus(record['holder'], 'state.reservation.holder');
      if (!seen.has(nexusId(holder.initiator, holder.targetPort))) {
        fail('state.reservation.holder', 'is not a registered I_T nexus');
      }
    }
    reservation = { type, scope: LU_SCOPE, holder };
  }
  return {
    version: PERSISTED_STATE_VERSION,
    generation: generation as number,
    aptpl: root['aptpl'],
    registrations,
    reservation,
  };
}
