/**
 * Persistent-reservation state machine of one simulated logical unit
 * (SPC-4 PERSISTENT RESERVE IN/OUT), following the "spec / SCST / CTL
 * majority" profile of spc4-pr-semantics.md §11. Section numbers in comments
 * refer to that document.
 *
 * Pure: no I/O, clocks or randomness. The caller serialises commands (one
 * device lock, §11.3) and persists snapshot() when execute() reports
 * persistentStateChanged.
 */
import { fixedSense, Sense, type SenseCode } from '../scsi/sense.js';
import { Opcode, ScsiStatus, SenseKey } from '../scsi/status.js';
import {
  decodeTransportId,
  encodeTransportId,
  transportIdFromPlain,
  transportIdIdentity,
  type TransportId,
} from './transport-id.js';
import { PrInAction, PrOutAction } from '../scsi/pr-codes.js';

/** An I_T nexus: initiator port × relative target port identifier (§0). */
export interface Nexus {
  readonly initiator: TransportId;
  readonly targetPort: number;
}

export interface EngineResult {
  readonly status: number;
  /** 18-byte fixed sense when status is CHECK CONDITION, otherwise null. */
  readonly sense: Buffer | null;
  /** PR IN data, already truncated to the allocation length; empty otherwise. */
  readonly data: Buffer;
  /** True when a successful command changed what APTPL must store, including turning APTPL off. */
  readonly persistentStateChanged: boolean;
}

export interface PrEngineOptions {
  /** Relative target port identifiers through which the logical unit is reachable. */
  readonly targetPorts: readonly number[];
  /** Registrations (I_T nexuses) the unit can hold; more yield INSUFFICIENT REGISTRATION RESOURCES. */
  readonly maxRegistrations?: number;
}

/** Reservation TYPE codes (§6.1). */
export const PrType = {
  WRITE_EXCLUSIVE: 1,
  EXCLUSIVE_ACCESS: 3,
  WRITE_EXCLUSIVE_REGISTRANTS_ONLY: 5,
  EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: 6,
  WRITE_EXCLUSIVE_ALL_REGISTRANTS: 7,
  EXCLUSIVE_ACCESS_ALL_REGISTRANTS: 8,
} as const;
export type PrTypeCode = (typeof PrType)[keyof typeof PrType];

export { PrInAction, PrOutAction } from '../scsi/pr-codes.js';

/** APTPL state file contents (§7.2). Keys are 16 lowercase hex digits. */
export interface PersistedLunState {
  readonly version: 1;
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
  readonly scope: 0;
  /** The holding I_T nexus; null for the all-registrants types, where every registrant holds it. */
  readonly holder: Nexus | null;
}

const INVALID_RELEASE_OF_PERSISTENT_RESERVATION: SenseCode = {
  key: SenseKey.ILLEGAL_REQUEST,
  asc: 0x26,
  ascq: 0x04,
};
const COMMANDS_CLEARED_BY_ANOTHER_INITIATOR: SenseCode = { key: SenseKey.UNIT_ATTENTION, asc: 0x2f, ascq: 0x00 };

const LU_SCOPE = 0;
const BASIC_LIST_LENGTH = 24;
const SPEC_I_PT_HEADER_LENGTH = 28;
const MOVE_HEADER_LENGTH = 24;
const DEFAULT_MAX_REGISTRATIONS = 256;
const EMPTY = Buffer.alloc(0);
const PERSISTED_VERSION = 1;
const U32_LIMIT = 2 ** 32;

const VALID_TYPES: ReadonlySet<number> = new Set(Object.values(PrType));

function isAllRegistrants(type: number): boolean {
  return type === PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS || type === PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS;
}

function isRegistrantsOnly(type: number): boolean {
  return type === PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY || type === PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY;
}

function nexusKey(initiator: TransportId, targetPort: number): string {
  return `${transportIdIdentity(initiator)}@${targetPort}`;
}

function keyToHex(key: bigint): string {
  return key.toString(16).padStart(16, '0');
}

function result(status: number, sense: SenseCode | null, data: Buffer = EMPTY): EngineResult {
  return { status, sense: sense === null ? null : fixedSense(sense), data, persistentStateChanged: false };
}

const good = (data?: Buffer): EngineResult => result(ScsiStatus.GOOD, null, data);
const conflict = (): EngineResult => result(ScsiStatus.RESERVATION_CONFLICT, null);
const checkCondition = (code: SenseCode): EngineResult => result(ScsiStatus.CHECK_CONDITION, code);

interface Registration {
  readonly initiator: TransportId;
  readonly initiatorIdentity: string;
  readonly targetPort: number;
  key: bigint;
  readonly allTgPt: boolean;
}

interface Reservation {
  readonly type: PrTypeCode;
  /** nexusKey of the holder; null for the all-registrants types. */
  readonly holder: string | null;
}

interface PrOutCdb {
  readonly action: number;
  readonly scope: number;
  readonly type: number;
}

/** Parameter list of every service action except REGISTER AND MOVE (§2.2). */
interface BasicList {
  readonly kind: 'basic';
  readonly reservationKey: bigint;
  readonly serviceActionKey: bigint;
  readonly specIPt: boolean;
  readonly allTgPt: boolean;
  readonly aptpl: boolean;
  readonly transportIds: Buffer;
}

/** REGISTER AND MOVE parameter list (§2.3). */
interface MoveList {
  readonly kind: 'move';
  readonly reservationKey: bigint;
  readonly serviceActionKey: bigint;
  readonly unreg: boolean;
  readonly aptpl: boolean;
  readonly relativeTargetPort: number;
  readonly transportId: Buffer;
}

type ListParse<T> = { readonly ok: true; readonly list: T } | { readonly ok: false; readonly sense: SenseCode };

function parseBasicList(list: Buffer): ListParse<BasicList> {
  // §2.2 length rules; totals that do not add up are PARAMETER LIST LENGTH ERROR
  // (SCST), malformed TransportIDs inside a consistent total are rejected later
  // with INVALID FIELD IN PARAMETER LIST.
  if (list.length < BASIC_LIST_LENGTH) return { ok: false, sense: Sense.PARAMETER_LIST_LENGTH_ERROR };
  const flags = list[20]!;
  const specIPt = (flags & 0x08) !== 0;
  let transportIds: Buffer = EMPTY;
  if (!specIPt) {
    if (list.length !== BASIC_LIST_LENGTH) return { ok: false, sense: Sense.PARAMETER_LIST_LENGTH_ERROR };
  } else {
    if (list.length < SPEC_I_PT_HEADER_LENGTH) return { ok: false, sense: Sense.PARAMETER_LIST_LENGTH_ERROR };
    const dataLength = list.readUInt32BE(24);
    if (SPEC_I_PT_HEADER_LENGTH + dataLength !== list.length) {
      return { ok: false, sense: Sense.PARAMETER_LIST_LENGTH_ERROR };
    }
    transportIds = list.subarray(SPEC_I_PT_HEADER_LENGTH);
  }
  return {
    ok: true,
    list: {
      kind: 'basic',
      reservationKey: list.readBigUInt64BE(0),
      serviceActionKey: list.readBigUInt64BE(8),
      specIPt,
      allTgPt: (flags & 0x04) !== 0,
      aptpl: (flags & 0x01) !== 0,
      transportIds,
    },
  };
}

function parseMoveList(list: Buffer): ListParse<MoveList> {
  if (list.length < MOVE_HEADER_LENGTH) return { ok: false, sense: Sense.PARAMETER_LIST_LENGTH_ERROR };
  // §2.3: LIO and SCST both answer a TransportID length that disagrees with the
  // list length with INVALID FIELD IN PARAMETER LIST, not a length error.
  if (MOVE_HEADER_LENGTH + list.readUInt32BE(20) !== list.length) {
    return { ok: false, sense: Sense.INVALID_FIELD_IN_PARAMETER_LIST };
  }
  return {
    ok: true,
    list: {
      kind: 'move',
      reservationKey: list.readBigUInt64BE(0),
      serviceActionKey: list.readBigUInt64BE(8),
      unreg: (list[17]! & 0x02) !== 0,
      aptpl: (list[17]! & 0x01) !== 0,
      relativeTargetPort: list.readUInt16BE(18),
      transportId: list.subarray(MOVE_HEADER_LENGTH),
    },
  };
}

function validatedOptions(options: PrEngineOptions): { ports: readonly number[]; maxRegistrations: number } {
  const ports = [...options.targetPorts];
  if (ports.length === 0) throw new RangeError('a logical unit needs at least one target port');
  for (const port of ports) {
    if (!Number.isInteger(port) || port < 1 || port > 0xffff) {
      throw new RangeError(`target port ${port} must be an integer 1..65535`);
    }
  }
  if (new Set(ports).size !== ports.length) throw new RangeError('target ports must be unique');
  const maxRegistrations = options.maxRegistrations ?? DEFAULT_MAX_REGISTRATIONS;
  if (!Number.isInteger(maxRegistrations) || maxRegistrations < 1) {
    throw new RangeError('maxRegistrations must be a positive integer');
  }
  return { ports, maxRegistrations };
}

export class PrEngine {
  private readonly targetPorts: readonly number[];
  private readonly maxRegistrations: number;
  /** Insertion order is registration order, which READ KEYS and READ FULL STATUS report (§5.2). */
  private readonly registrations = new Map<string, Registration>();
  private reservation: Reservation | null = null;
  private generation = 0;
  private aptpl = false;
  private readonly unitAttentions = new Map<string, SenseCode[]>();
  private powerOnPending = false;
  private changed = false;

  constructor(options: PrEngineOptions) {
    const { ports, maxRegistrations } = validatedOptions(options);
    this.targetPorts = ports;
    this.maxRegistrations = maxRegistrations;
  }

  /**
   * Rebuilds an engine from a snapshot() (typically read back from the APTPL
   * file). Throws an Error naming the offending field if `state` is malformed.
   * Registrations on target ports the unit no longer has are kept, like an
   * array keeps those of an offline port.
   */
  static restore(state: unknown, options: PrEngineOptions): PrEngine {
    const valid = parsePersistedLunState(state);
    const engine = new PrEngine(options);
    engine.generation = valid.generation;
    engine.aptpl = valid.aptpl;
    for (const r of valid.registrations) {
      engine.registrations.set(nexusKey(r.initiator, r.targetPort), {
        initiator: r.initiator,
        initiatorIdentity: transportIdIdentity(r.initiator),
        targetPort: r.targetPort,
        key: BigInt(`0x${r.key}`),
        allTgPt: r.allTgPt,
      });
    }
    if (valid.reservation !== null) {
      const { type, holder } = valid.reservation;
      engine.reservation = { type, holder: holder === null ? null : nexusKey(holder.initiator, holder.targetPort) };
    }
    return engine;
  }

  /**
   * Runs one PERSISTENT RESERVE IN/OUT command received on `nexus`. `cdb` is
   * QEMU's zero-padded 16-byte CDB; `params` the PR OUT bytes the transport
   * delivered. Throws RangeError if the nexus' target port is not one of the
   * unit's.
   */
  execute(nexus: Nexus, cdb: Uint8Array, params: Uint8Array): EngineResult {
    const key = this.keyOf(nexus);
    // §1/§3 step 1: a pending UA is reported first and consumes the command.
    const attention = this.queueFor(key).shift();
    if (attention !== undefined) return checkCondition(attention);
    const c = Buffer.alloc(16);
    c.set(cdb.subarray(0, 16));
    switch (c[0]) {
      case Opcode.PERSISTENT_RESERVE_IN:
        return this.persistentReserveIn(c);
      case Opcode.PERSISTENT_RESERVE_OUT:
        return this.persistentReserveOut(nexus, key, c, params);
      default:
        return checkCondition(Sense.INVALID_OPCODE);
    }
  }

  /**
   * Whether a medium read or write from `nexus` would pass the reservation
   * (§6.1/§6.2). Pending unit attentions are not considered.
   */
  checkAccess(nexus: Nexus, kind: 'read' | 'write'): 'allowed' | 'conflict' {
    const key = this.keyOf(nexus);
    const reservation = this.reservation;
    if (reservation === null || this.isHolder(key)) return 'allowed';
    const registered = this.registrations.has(key);
    switch (reservation.type) {
      case PrType.WRITE_EXCLUSIVE:
        return kind === 'read' ? 'allowed' : 'conflict';
      case PrType.EXCLUSIVE_ACCESS:
        return 'conflict';
      case PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY:
      case PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS:
        return kind === 'read' || registered ? 'allowed' : 'conflict';
      case PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY:
      case PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS:
        return registered ? 'allowed' : 'conflict';
    }
  }

  /**
   * Models power-on (§7.3): every I_T nexus, including those that have not
   * sent a command yet, first receives UNIT ATTENTION 29/00. Conditions
   * queued before are discarded, as the device state that held them is gone.
   * The I/O layer calls this once after creating or restoring the engine.
   */
  queuePowerOnReset(): void {
    for (const queue of this.unitAttentions.values()) queue.splice(0, queue.length, Sense.POWER_ON_RESET);
    this.powerOnPending = true;
  }

  /**
   * The state APTPL preserves (§7.2). Always describes the current state; when
   * `aptpl` is false it is what a power loss discards, so the I/O layer
   * deletes the file instead of writing it. The generation is included
   * (SCST) so initiators caching it are not confused after a restart.
   */
  snapshot(): PersistedLunState {
    const reservation = this.reservation;
    let holder: Nexus | null = null;
    if (reservation?.holder != null) {
      const r = this.registrations.get(reservation.holder)!;
      holder = { initiator: { ...r.initiator }, targetPort: r.targetPort };
    }
    return {
      version: PERSISTED_VERSION,
      generation: this.generation,
      aptpl: this.aptpl,
      registrations: [...this.registrations.values()].map((r) => ({
        initiator: { ...r.initiator },
        targetPort: r.targetPort,
        key: keyToHex(r.key),
        allTgPt: r.allTgPt,
      })),
      reservation: reservation === null ? null : { type: reservation.type, scope: LU_SCOPE, holder },
    };
  }

  private keyOf(nexus: Nexus): string {
    if (!this.targetPorts.includes(nexus.targetPort)) {
      throw new RangeError(`target port ${nexus.targetPort} is not a port of this logical unit`);
    }
    return nexusKey(nexus.initiator, nexus.targetPort);
  }

  private queueFor(key: string): SenseCode[] {
    let queue = this.unitAttentions.get(key);
    if (queue === undefined) {
      queue = this.powerOnPending ? [Sense.POWER_ON_RESET] : [];
      this.unitAttentions.set(key, queue);
    }
    return queue;
  }

  /** A condition already pending for the nexus is not queued twice, which also bounds the queue. */
  private queueUnitAttention(key: string, code: SenseCode): void {
    const queue = this.queueFor(key);
    if (!queue.some((c) => c.asc === code.asc && c.ascq === code.ascq && c.key === code.key)) queue.push(code);
  }

  private isHolder(key: string): boolean {
    const reservation = this.reservation;
    if (reservation === null) return false;
    return reservation.holder === null ? this.registrations.has(key) : reservation.holder === key;
  }

  private bumpGeneration(): void {
    this.generation = (this.generation + 1) % U32_LIMIT;
    this.changed = true;
  }

  private setAptpl(aptpl: boolean): void {
    if (this.aptpl !== aptpl) this.changed = true;
    this.aptpl = aptpl;
  }

  private setReservation(reservation: Reservation | null): void {
    this.reservation = reservation;
    this.changed = true;
  }

  /**
   * The registrations created together by one ALL_TG_PT registration act as a
   * unit: a key change or unregistration from any of them applies to all
   * (§4.1.1 step 1), whatever ALL_TG_PT says in the later command.
   */
  private groupOf(key: string): string[] {
    const reg = this.registrations.get(key)!;
    if (!reg.allTgPt) return [key];
    return [...this.registrations]
      .filter(([, r]) => r.allTgPt && r.initiatorIdentity === reg.initiatorIdentity)
      .map(([k]) => k);
  }

  private addRegistration(initiator: TransportId, targetPort: number, key: bigint, allTgPt: boolean): void {
    this.registrations.set(nexusKey(initiator, targetPort), {
      initiator,
      initiatorIdentity: transportIdIdentity(initiator),
      targetPort,
      key,
      allTgPt,
    });
    this.changed = true;
  }

  private changeKey(keys: readonly string[], newKey: bigint): void {
    for (const k of keys) this.registrations.get(k)!.key = newKey;
    this.changed = true;
  }

  private removeRegistrations(keys: readonly string[]): void {
    for (const k of keys) this.registrations.delete(k);
    this.changed = true;
    // §0: an all-registrants reservation lives only while someone is registered.
    if (this.reservation?.holder === null && this.registrations.size === 0) this.reservation = null;
  }

  private persistentReserveOut(nexus: Nexus, key: string, cdb: Buffer, params: Uint8Array): EngineResult {
    const aptplBefore = this.aptpl;
    this.changed = false;
    const outcome = this.runPersistentReserveOut(nexus, key, cdb, params);
    const persistentStateChanged =
      outcome.status === ScsiStatus.GOOD && this.changed && (aptplBefore || this.aptpl);
    return { ...outcome, persistentStateChanged };
  }

  /** Checks in the order of §3; nothing is modified before the last check passes. */
  private runPersistentReserveOut(nexus: Nexus, key: string, c: Buffer, params: Uint8Array): EngineResult {
    const cdb: PrOutCdb = { action: c[1]! & 0x1f, scope: c[2]! >> 4, type: c[2]! & 0x0f };
    // §4.7: REPLACE LOST RESERVATION is not implemented (RLR_C=0), like every reference target.
    if (cdb.action > PrOutAction.REGISTER_AND_MOVE) return checkCondition(Sense.INVALID_FIELD_IN_CDB);

    // The CDB's 32-bit PARAMETER LIST LENGTH is authoritative. QEMU frames the
    // transfer by bytes 7-8 only, so fewer delivered bytes mean the device could
    // not receive the list it was told about: a length error. Extra delivered
    // bytes lie outside the parameter list and are ignored.
    const declared = c.readUInt32BE(5);
    if (params.length < declared) return checkCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
    const raw = Buffer.from(params.subarray(0, declared));

    const parsed = cdb.action === PrOutAction.REGISTER_AND_MOVE ? parseMoveList(raw) : parseBasicList(raw);
    if (!parsed.ok) return checkCondition(parsed.sense);
    const list = parsed.list;
    if (list.kind === 'basic' && list.specIPt && cdb.action !== PrOutAction.REGISTER) {
      return checkCondition(Sense.INVALID_FIELD_IN_PARAMETER_LIST);
    }

    const registration = this.registrations.get(key);
    const registering =
      cdb.action === PrOutAction.REGISTER || cdb.action === PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY;
    // §3 step 6 (majority; LIO's NOT READY quirk is not reproduced).
    if (registration === undefined && !registering) return conflict();
    if (
      cdb.action !== PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY &&
      list.reservationKey !== (registration?.key ?? 0n)
    ) {
      return conflict();
    }

    if (list.kind === 'move') return this.registerAndMove(nexus, key, list);
    switch (cdb.action) {
      case PrOutAction.REGISTER:
      case PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY:
        return this.register(nexus, key, list);
      case PrOutAction.RESERVE:
        return this.reserve(key, cdb);
      case PrOutAction.RELEASE:
        return this.release(key, cdb);
      case PrOutAction.CLEAR:
        return this.clear(key);
      default:
        return this.preempt(key, cdb, list, cdb.action === PrOutAction.PREEMPT_AND_ABORT);
    }
  }

  /** REGISTER and REGISTER AND IGNORE EXISTING KEY once the key check has passed (§4.1). */
  private register(nexus: Nexus, key: string, list: BasicList): EngineResult {
    if (this.registrations.has(key)) {
      if (list.specIPt) return checkCondition(Sense.INVALID_FIELD_IN_PARAMETER_LIST);
      if (list.serviceActionKey === 0n) this.unregister(key);
      else this.changeKey(this.groupOf(key), list.serviceActionKey);
      this.setAptpl(list.aptpl);
      // §4.8 recommendation: +1 for every successful REGISTER-family command, unregister included (SCST, tgt).
      this.bumpGeneration();
      return good();
    }

    const initiators: TransportId[] = [nexus.initiator];
    for (let rest = list.transportIds; rest.length > 0; ) {
      const decoded = decodeTransportId(rest);
      if (!decoded.ok) return checkCondition(Sense.INVALID_FIELD_IN_PARAMETER_LIST);
      initiators.push(decoded.value.id);
      rest = rest.subarray(decoded.value.length);
    }
    if (list.serviceActionKey === 0n) {
      // §4.1: nothing to register. The generation still counts the command
      // (§4.8, SCST/tgt); APTPL is untouched as no state is established.
      this.bumpGeneration();
      return good();
    }

    const ports = list.allTgPt ? this.targetPorts : [nexus.targetPort];
    const targets = new Map<string, { initiator: TransportId; port: number }>();
    for (const initiator of initiators) {
      for (const port of ports) targets.set(nexusKey(initiator, port), { initiator, port });
    }
    // §4.1 leaves SPEC_I_PT on an already registered I_T nexus open (LIO skips,
    // SCST overwrites); we reject it, like an ALL_TG_PT registration that would
    // overlap an existing one, so one command never silently rewrites another
    // nexus' key and the registration stays all-or-nothing.
    for (const k of targets.keys()) {
      if (this.registrations.has(k)) return checkCondition(Sense.INVALID_FIELD_IN_PARAMETER_LIST);
    }
    if (this.registrations.size + targets.size > this.maxRegistrations) {
      return checkCondition(Sense.INSUFFICIENT_REGISTRATION_RESOURCES);
    }
    for (const { initiator, port } of targets.values()) {
      this.addRegistration(initiator, port, list.serviceActionKey, list.allTgPt);
    }
    this.setAptpl(list.aptpl);
    this.bumpGeneration();
    return good();
  }

  /** §4.1.1: unregistering the holder releases a WE/EA/RO reservation; only RO types announce it. */
  private unregister(key: string): void {
    const group = this.groupOf(key);
    const reservation = this.reservation;
    const heldByGroup = reservation?.holder != null && group.includes(reservation.holder);
    this.removeRegistrations(group);
    if (reservation === null || !heldByGroup) return;
    this.setReservation(null);
    if (isRegistrantsOnly(reservation.type)) {
      for (const other of this.registrations.keys()) {
        this.queueUnitAttention(other, Sense.RESERVATIONS_RELEASED);
      }
    }
  }

  private reserve(key: string, cdb: PrOutCdb): EngineResult {
    // §4.2: SCOPE other than LU_SCOPE is INVALID FIELD IN CDB (SCST/tgt; LIO uses 26/00).
    if (!VALID_TYPES.has(cdb.type) || cdb.scope !== LU_SCOPE) return checkCondition(Sense.INVALID_FIELD_IN_CDB);
    const type = cdb.type as PrTypeCode;
    if (this.reservation === null) {
      this.setReservation({ type, holder: isAllRegistrants(type) ? null : key });
      return good();
    }
    if (this.isHolder(key) && this.reservation.type === type) return good();
    return conflict();
  }

  private release(key: string, cdb: PrOutCdb): EngineResult {
    const reservation = this.reservation;
    if (reservation === null || !this.isHolder(key)) return good();
    // §4.3: SCST/CTL/tgt majority; LIO answers RESERVATION CONFLICT.
    if (reservation.type !== cdb.type || cdb.scope !== LU_SCOPE) {
      return checkCondition(INVALID_RELEASE_OF_PERSISTENT_RESERVATION);
    }
    this.setReservation(null);
    if (isRegistrantsOnly(reservation.type) || isAllRegistrants(reservation.type)) {
      for (const other of this.registrations.keys()) {
        if (other !== key) this.queueUnitAttention(other, Sense.RESERVATIONS_RELEASED);
      }
    }
    return good();
  }

  private clear(key: string): EngineResult {
    const others = [...this.registrations.keys()].filter((k) => k !== key);
    this.removeRegistrations([...this.registrations.keys()]);
    this.setReservation(null);
    for (const other of others) this.queueUnitAttention(other, Sense.RESERVATIONS_PREEMPTED);
    this.bumpGeneration();
    return good();
  }

  /** PREEMPT and PREEMPT AND ABORT, decision tree of §4.5. */
  private preempt(key: string, cdb: PrOutCdb, list: BasicList, abort: boolean): EngineResult {
    const target = list.serviceActionKey;
    const reservation = this.reservation;
    const preemptsReservation =
      reservation !== null &&
      (reservation.holder === null ? target === 0n : target === this.registrations.get(reservation.holder)!.key);
    if (!preemptsReservation) {
      // §4.5: SARK 0 without an all-registrants reservation is 05/26/00 (LIO, CTL; SCST answers a conflict).
      if (target === 0n) return checkCondition(Sense.INVALID_FIELD_IN_PARAMETER_LIST);
      return this.preemptRegistrations(key, target, abort);
    }
    // Only a preempted reservation takes on the new TYPE/SCOPE, so only then are they checked.
    if (!VALID_TYPES.has(cdb.type) || cdb.scope !== LU_SCOPE) return checkCondition(Sense.INVALID_FIELD_IN_CDB);
    const type = cdb.type as PrTypeCode;

    // Preempting the all-registrants reservation with SARK 0 removes every other
    // registration; otherwise those carrying the holder's key go. The sender's
    // own ALL_TG_PT group is spared, so it stays a coherent unit (see groupOf).
    const spared = new Set(this.groupOf(key));
    const victims = [...this.registrations]
      .filter(([k, r]) => !spared.has(k) && (target === 0n || r.key === target))
      .map(([k]) => k);
    this.removeRegistrations(victims);
    this.notifyPreempted(victims, key, abort);
    this.setReservation({ type, holder: isAllRegistrants(type) ? null : key });
    if (type !== reservation.type) {
      for (const other of this.registrations.keys()) {
        if (other !== key) this.queueUnitAttention(other, Sense.RESERVATIONS_RELEASED);
      }
    }
    this.bumpGeneration();
    return good();
  }

  /**
   * §4.5 "remove registrations": every I_T nexus registered with `target`
   * goes, the sender included when its key matches (spec wording, which only
   * exempts the sender from the unit attention). TYPE and SCOPE are ignored
   * (spec, CTL; LIO and SCST validate TYPE).
   */
  private preemptRegistrations(key: string, target: bigint, abort: boolean): EngineResult {
    const victims = [...this.registrations].filter(([, r]) => r.key === target).map(([k]) => k);
    if (victims.length === 0) return conflict();
    this.removeRegistrations(victims);
    this.notifyPreempted(victims, key, abort);
    this.bumpGeneration();
    return good();
  }

  /**
   * REGISTRATIONS PREEMPTED for each removed nexus but the sender (§4.9). For
   * PREEMPT AND ABORT the engine cannot see in-flight tasks, so it treats every
   * preempted nexus as having had its tasks aborted with TAS=0 and adds
   * COMMANDS CLEARED BY ANOTHER INITIATOR, as SCST does (§4.5).
   */
  private notifyPreempted(victims: readonly string[], sender: string, abort: boolean): void {
    for (const victim of victims) {
      if (victim === sender) continue;
      this.queueUnitAttention(victim, Sense.REGISTRATIONS_PREEMPTED);
      if (abort) this.queueUnitAttention(victim, COMMANDS_CLEARED_BY_ANOTHER_INITIATOR);
    }
  }

  /** §4.6, checks in the order of its table. */
  private registerAndMove(nexus: Nexus, key: string, list: MoveList): EngineResult {
    // SARK 0: LIO's 05/26/00, as the field is in the parameter list (SCST points 05/24/00 at it).
    if (list.serviceActionKey === 0n) return checkCondition(Sense.INVALID_FIELD_IN_PARAMETER_LIST);
    const reservation = this.reservation;
    if (reservation === null) return checkCondition(Sense.INVALID_FIELD_IN_CDB);
    if (!this.isHolder(key) || isAllRegistrants(reservation.type)) return conflict();
    const decoded = decodeTransportId(list.transportId);
    if (!decoded.ok || decoded.value.length !== list.transportId.length) {
      return checkCondition(Sense.INVALID_FIELD_IN_PARAMETER_LIST);
    }
    const destination = decoded.value.id;
    if (transportIdIdentity(destination) === transportIdIdentity(nexus.initiator)) {
      return checkCondition(Sense.INVALID_FIELD_IN_PARAMETER_LIST);
    }
    if (!this.targetPorts.includes(list.relativeTargetPort)) {
      return checkCondition(Sense.INVALID_FIELD_IN_PARAMETER_LIST);
    }
    const destinationKey = nexusKey(destination, list.relativeTargetPort);
    const destinationRegistered = this.registrations.has(destinationKey);
    const released = list.unreg ? this.groupOf(key) : [];
    if (this.registrations.size + (destinationRegistered ? 0 : 1) - released.length > this.maxRegistrations) {
      return checkCondition(Sense.INSUFFICIENT_REGISTRATION_RESOURCES);
    }

    if (destinationRegistered) this.changeKey(this.groupOf(destinationKey), list.serviceActionKey);
    else this.addRegistration(destination, list.relativeTargetPort, list.serviceActionKey, false);
    this.setReservation({ type: reservation.type, holder: destinationKey });
    this.removeRegistrations(released);
    this.setAptpl(list.aptpl);
    this.bumpGeneration();
    return good();
  }

  private persistentReserveIn(c: Buffer): EngineResult {
    let data: Buffer;
    switch (c[1]! & 0x1f) {
      case PrInAction.READ_KEYS:
        data = this.readKeys();
        break;
      case PrInAction.READ_RESERVATION:
        data = this.readReservation();
        break;
      case PrInAction.REPORT_CAPABILITIES:
        data = this.reportCapabilities();
        break;
      case PrInAction.READ_FULL_STATUS:
        data = this.readFullStatus();
        break;
      default:
        return checkCondition(Sense.INVALID_FIELD_IN_CDB);
    }
    // §5.1: return what fits; truncation is never an error and length fields stay complete.
    return good(Buffer.from(data.subarray(0, c.readUInt16BE(7))));
  }

  private header(additionalLength: number, extra: number): Buffer {
    const out = Buffer.alloc(8 + extra);
    out.writeUInt32BE(this.generation, 0);
    out.writeUInt32BE(additionalLength, 4);
    return out;
  }

  private readKeys(): Buffer {
    const keys = [...this.registrations.values()];
    const out = this.header(8 * keys.length, 8 * keys.length);
    keys.forEach((r, i) => out.writeBigUInt64BE(r.key, 8 + 8 * i));
    return out;
  }

  private readReservation(): Buffer {
    const reservation = this.reservation;
    if (reservation === null) return this.header(0, 0);
    const out = this.header(16, 16);
    // §5.3: the all-registrants types report key 0.
    const holderKey = reservation.holder === null ? 0n : this.registrations.get(reservation.holder)!.key;
    out.writeBigUInt64BE(holderKey, 8);
    out[21] = (LU_SCOPE << 4) | reservation.type;
    return out;
  }

  private reportCapabilities(): Buffer {
    const out = Buffer.alloc(8);
    out.writeUInt16BE(8, 0);
    // CRH: SPC-2 RESERVE/RELEASE never reach this unit (the helper forwards
    // only PR commands), so the compatible-handling claim holds vacuously and
    // matches what QEMU sees from LIO/SCST. SIP_C, ATP_C, PTPL_C: all implemented.
    out[2] = 0x10 | 0x08 | 0x04 | 0x01;
    // TMV, ALLOW COMMANDS 100b (SCST/CTL, consistent with the §6.2 table), PTPL_A.
    out[3] = 0x80 | (0b100 << 4) | (this.aptpl ? 0x01 : 0x00);
    out[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;
    out[5] = 0x01;
    return out;
  }

  /**
   * §5.5. One descriptor per registered I_T nexus, so descriptors match READ
   * KEYS one to one and R_HOLDER/RTPI stay exact; an ALL_TG_PT registration
   * also sets ALL_TG_PT (LIO's shape; SCST reports such nexuses with 0).
   */
  private readFullStatus(): Buffer {
    const descriptors = [...this.registrations].map(([k, r]) => {
      const transportId = encodeTransportId(r.initiator);
      const d = Buffer.alloc(24 + transportId.length);
      d.writeBigUInt64BE(r.key, 0);
      const holder = this.isHolder(k);
      d[12] = (r.allTgPt ? 0x02 : 0) | (holder ? 0x01 : 0);
      if (holder) d[13] = (LU_SCOPE << 4) | this.reservation!.type;
      d.writeUInt16BE(r.targetPort, 18);
      d.writeUInt32BE(transportId.length, 20);
      transportId.copy(d, 24);
      return d;
    });
    const body = Buffer.concat(descriptors);
    return Buffer.concat([this.header(body.length, 0), body]);
  }
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
    // §0: 0 is never a registered key.
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
  if (root['version'] !== PERSISTED_VERSION) fail('state.version', `must be ${PERSISTED_VERSION}`);
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
    const k = nexusKey(r.initiator, r.targetPort);
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
    if (typeof type !== 'number' || !VALID_TYPES.has(type)) fail('state.reservation.type', 'must be 1, 3, 5, 6, 7 or 8');
    if (record['scope'] !== LU_SCOPE) fail('state.reservation.scope', 'must be 0 (LU_SCOPE)');
    let holder: Nexus | null = null;
    if (isAllRegistrants(type)) {
      if (record['holder'] !== null) fail('state.reservation.holder', 'must be null for an all-registrants type');
      if (registrations.length === 0) fail('state.reservation', 'is an all-registrants reservation without registrations');
    } else {
      holder = asNexus(record['holder'], 'state.reservation.holder');
      if (!seen.has(nexusKey(holder.initiator, holder.targetPort))) {
        fail('state.reservation.holder', 'is not a registered I_T nexus');
      }
    }
    reservation = { type: type as PrTypeCode, scope: LU_SCOPE, holder };
  }
  return {
    version: PERSISTED_VERSION,
    generation: generation as number,
    aptpl: root['aptpl'],
    registrations,
    reservation,
  };
}
