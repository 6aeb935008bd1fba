/**
 * Persistent-reservation state machine of one simulated logical unit
 * (SPC-4 PERSISTENT RESERVE IN/OUT). Where the standard leaves a choice or
 * the reference targets disagree, it answers like the majority of SCST
 * (scst/src/scst_pres.c), FreeBSD CTL (sys/cam/ctl/ctl.c) and tgt
 * (usr/spc.c), and says where Linux LIO (drivers/target/target_core_pr.c)
 * differs. Clause numbers are spc4r17's (see src/scsi/pr-codes.ts).
 *
 * A target profile (src/sim/target-profile.ts) can make it answer like LIO
 * or tgt instead, quirks included.
 *
 * Pure: no I/O, clocks or randomness. The caller serialises commands (one
 * device lock, as LIO's dev_reservation_lock and SCST's PR mutex do) and
 * persists snapshot() when execute() reports persistentStateChanged. The
 * bytes come and go through the codec in src/scsi/.
 */
import {
  isAllRegistrantsType,
  isPrType,
  isRegistrantsOnlyType,
  LU_SCOPE,
  PrInAction,
  PrOutAction,
  PrType,
  type PrTypeCode,
} from '../scsi/pr-codes.js';
import {
  decodePrInCdb,
  encodeReadFullStatus,
  encodeReadKeys,
  encodeReadReservation,
  encodeReportCapabilities,
} from '../scsi/pr-in.js';
import {
  basicParametersProblem,
  decodeBasicParameters,
  decodePrOutCdb,
  decodeRegisterAndMoveParameters,
  registerAndMoveParametersProblem,
  type BasicParameters,
  type PrOutCdb,
  type RegisterAndMoveParameters,
} from '../scsi/pr-out.js';
import { fixedSense, Sense, type SenseCode } from '../scsi/sense.js';
import { Opcode, ScsiStatus } from '../scsi/status.js';
import { decodeTransportId, decodeTransportIdList, transportIdIdentity, type TransportId } from '../scsi/transport-id.js';
import { nexusId, type Nexus } from './nexus.js';
import { TARGET_PROFILES, type TargetProfile, type TargetProfileName } from './target-profile.js';
import {
  decodePersistedKey,
  encodePersistedKey,
  parsePersistedLunState,
  PERSISTED_STATE_VERSION,
  type PersistedLunState,
} from './persisted-state.js';

export interface EngineResult {
  readonly status: number;
  /** 18-byte fixed sense when status is CHECK CONDITION, otherwise null. */
  readonly sense: Buffer | null;
  /** PR IN data, already truncated to the allocation length; empty otherwise. */
  readonly data: Buffer;
  /**
   * True when a successful command changed what APTPL must store, including
   * turning APTPL off; under a profile that writes after every REGISTER
   * (LIO), also after each successful REGISTER-family command.
   */
  readonly persistentStateChanged: boolean;
  /** What to answer instead when persisting fails; null: the failure is only logged (the profile's target ignores it). */
  readonly persistFailure: SenseCode | null;
}

export interface PrEngineOptions {
  /** Relative target port identifiers through which the logical unit is reachable. */
  readonly targetPorts: readonly number[];
  /** Registrations (I_T nexuses) the unit can hold; more yield INSUFFICIENT REGISTRATION RESOURCES. */
  readonly maxRegistrations?: number;
  /** Whose behaviour to reproduce; 'spc4' (the default) is the standard as the SCST/CTL majority reads it. */
  readonly profile?: TargetProfileName;
}

const DEFAULT_MAX_REGISTRATIONS = 256;
/**
 * Unit-attention state is kept for at least this many I_T nexuses (and for four
 * times maxRegistrations when that is more). The simulated default gives every
 * client process an initiator of its own, so without a bound every process that
 * ever sent a command would stay in memory (security review, "simulated default
 * grows without bound").
 */
const MIN_TRACKED_NEXUSES = 1024;
const EMPTY = Buffer.alloc(0);
const U32_LIMIT = 2 ** 32;

function result(status: number, sense: SenseCode | null, data: Buffer = EMPTY): EngineResult {
  return { status, sense: sense === null ? null : fixedSense(sense), data, persistentStateChanged: false, persistFailure: null };
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
  /** nexusId of the holder; null for the all-registrants types. */
  readonly holder: string | null;
}

type ParameterList = ({ readonly kind: 'basic' } & BasicParameters) | ({ readonly kind: 'move' } & RegisterAndMoveParameters);

/**
 * The list the CDB announced, or the sense for lengths that do not add up.
 * Basic lists: PARAMETER LIST LENGTH ERROR for every inconsistency (SCST);
 * malformed TransportIDs inside a consistent total are rejected later with
 * INVALID FIELD IN PARAMETER LIST. REGISTER AND MOVE: LIO and SCST both answer
 * a TransportID length that disagrees with the list length with INVALID FIELD
 * IN PARAMETER LIST, not a length error.
 */
function parseParameterList(action: number, list: Buffer, lengthSense: SenseCode): { ok: true; list: ParameterList } | { ok: false; sense: SenseCode } {
  if (action === PrOutAction.REGISTER_AND_MOVE) {
    const problem = registerAndMoveParametersProblem(list);
    if (problem === null) return { ok: true, list: { kind: 'move', ...decodeRegisterAndMoveParameters(list) } };
    return { ok: false, sense: problem.kind === 'short' ? Sense.PARAMETER_LIST_LENGTH_ERROR : Sense.INVALID_FIELD_IN_PARAMETER_LIST };
  }
  if (basicParametersProblem(list) !== null) return { ok: false, sense: lengthSense };
  return { ok: true, list: { kind: 'basic', ...decodeBasicParameters(list) } };
}

function validatedOptions(options: PrEngineOptions): { ports: readonly number[]; maxRegistrations: number; profile: TargetProfile } {
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
  const profile = TARGET_PROFILES[options.profile ?? 'spc4'];
  if (profile === undefined) throw new RangeError(`unknown target profile ${String(options.profile)}`);
  return { ports, maxRegistrations, profile };
}

export class PrEngine {
  private readonly targetPorts: readonly number[];
  private readonly maxRegistrations: number;
  private readonly profile: TargetProfile;
  /** Insertion order is registration order, which READ KEYS and READ FULL STATUS report (SCST, LIO). */
  private readonly registrations = new Map<string, Registration>();
  private reservation: Reservation | null = null;
  private generation = 0;
  private aptpl = false;
  /** Pending conditions per I_T nexus that has sent a command; insertion order is first contact. */
  private readonly unitAttentions = new Map<string, SenseCode[]>();
  private readonly maxTrackedNexuses: number;
  private powerOnPending = false;
  private changed = false;

  constructor(options: PrEngineOptions) {
    const { ports, maxRegistrations, profile } = validatedOptions(options);
    this.targetPorts = ports;
    this.maxRegistrations = maxRegistrations;
    this.maxTrackedNexuses = Math.max(MIN_TRACKED_NEXUSES, 4 * maxRegistrations);
    this.profile = profile;
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
      engine.registrations.set(nexusId(r.initiator, r.targetPort), {
        initiator: r.initiator,
        initiatorIdentity: transportIdIdentity(r.initiator),
        targetPort: r.targetPort,
        key: decodePersistedKey(r.key),
        allTgPt: r.allTgPt,
      });
    }
    if (valid.reservation !== null) {
      const { type, holder } = valid.reservation;
      engine.reservation = { type, holder: holder === null ? null : nexusId(holder.initiator, holder.targetPort) };
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
    // A pending unit attention is reported first and consumes the command (SAM-5; every reference target).
    const attention = this.queueFor(key).shift();
    if (attention !== undefined) return checkCondition(attention);
    const padded = Buffer.alloc(16);
    padded.set(cdb.subarray(0, 16));
    switch (padded[0]) {
      case Opcode.PERSISTENT_RESERVE_IN:
        return this.persistentReserveIn(padded);
      case Opcode.PERSISTENT_RESERVE_OUT:
        return this.persistentReserveOut(nexus, key, padded, params);
      default:
        return checkCondition(Sense.INVALID_OPCODE);
    }
  }

  /**
   * Whether a medium read or write from `nexus` would pass the reservation
   * (spc4r17 table 45 and SBC-3's reservation table). Pending unit attentions are not considered.
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
   * Models power-on: every I_T nexus, including those that have not
   * sent a command yet, first receives UNIT ATTENTION 29/00. Conditions
   * queued before are discarded, as the device state that held them is gone.
   * The I/O layer calls this once after creating or restoring the engine.
   */
  queuePowerOnReset(): void {
    for (const queue of this.unitAttentions.values()) queue.splice(0, queue.length, Sense.POWER_ON_RESET);
    this.powerOnPending = true;
  }

  /**
   * The state APTPL preserves. Always describes the current state; when
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
      version: PERSISTED_STATE_VERSION,
      generation: this.generation,
      aptpl: this.aptpl,
      registrations: [...this.registrations.values()].map((r) => ({
        initiator: { ...r.initiator },
        targetPort: r.targetPort,
        key: encodePersistedKey(r.key),
        allTgPt: r.allTgPt,
      })),
      reservation: reservation === null ? null : { type: reservation.type, scope: LU_SCOPE, holder },
    };
  }

  private keyOf(nexus: Nexus): string {
    if (!this.targetPorts.includes(nexus.targetPort)) {
      throw new RangeError(`target port ${nexus.targetPort} is not a port of this logical unit`);
    }
    return nexusId(nexus.initiator, nexus.targetPort);
  }

  private queueFor(key: string): SenseCode[] {
    let queue = this.unitAttentions.get(key);
    if (queue === undefined) {
      queue = this.powerOnPending ? [Sense.POWER_ON_RESET] : [];
      this.unitAttentions.set(key, queue);
      this.forgetOldNexuses();
    }
    return queue;
  }

  /**
   * Beyond maxTrackedNexuses, the unregistered nexuses first seen longest ago
   * are forgotten, pending conditions and all, as a target forgets a lost I_T
   * nexus: one that comes back is new and gets 29/00 first. Registrants are
   * never forgotten (there are at most maxRegistrations of them).
   */
  private forgetOldNexuses(): void {
    let excess = this.unitAttentions.size - this.maxTrackedNexuses;
    for (const key of this.unitAttentions.keys()) {
      if (excess <= 0) return;
      if (this.registrations.has(key)) continue;
      this.unitAttentions.delete(key);
      excess -= 1;
    }
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
   * (spc4r17 5.7.7), whatever ALL_TG_PT says in the later command.
   */
  private groupOf(key: string): string[] {
    const reg = this.registrations.get(key)!;
    if (!reg.allTgPt) return [key];
    return [...this.registrations]
      .filter(([, r]) => r.allTgPt && r.initiatorIdentity === reg.initiatorIdentity)
      .map(([k]) => k);
  }

  private addRegistration(initiator: TransportId, targetPort: number, key: bigint, allTgPt: boolean): void {
    this.registrations.set(nexusId(initiator, targetPort), {
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
    // An all-registrants reservation lives only while someone is registered (spc4r17 5.7.11.1).
    if (this.reservation?.holder === null && this.registrations.size === 0) this.reservation = null;
  }

  private persistentReserveOut(nexus: Nexus, key: string, cdb: Buffer, params: Uint8Array): EngineResult {
    const aptplBefore = this.aptpl;
    this.changed = false;
    const outcome = this.runPersistentReserveOut(nexus, key, cdb, params);
    const action = decodePrOutCdb(cdb).action;
    const registering = action === PrOutAction.REGISTER || action === PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY;
    const { persistence } = this.profile;
    const persistentStateChanged =
      outcome.status === ScsiStatus.GOOD &&
      ((this.changed && (aptplBefore || this.aptpl)) || (registering && persistence.everyRegister && this.changed));
    return { ...outcome, persistentStateChanged, persistFailure: registering ? persistence.registerFailure : persistence.otherFailure };
  }

  /**
   * Checks in the order SCST (scst_persistent_reserve_out_local) and LIO
   * (target_scsi3_emulate_pr_out) apply them; nothing is modified before the
   * last check passes.
   */
  private runPersistentReserveOut(nexus: Nexus, key: string, rawCdb: Buffer, params: Uint8Array): EngineResult {
    const cdb = decodePrOutCdb(rawCdb);
    // REPLACE LOST RESERVATION is not implemented (RLR_C=0), like every reference target.
    if (cdb.action > PrOutAction.REGISTER_AND_MOVE) return checkCondition(Sense.INVALID_FIELD_IN_CDB);
    if (cdb.action === PrOutAction.PREEMPT_AND_ABORT && !this.profile.preemptAndAbort) return checkCondition(Sense.INVALID_FIELD_IN_CDB);

    // The CDB's 32-bit PARAMETER LIST LENGTH is authoritative. QEMU frames the
    // transfer by bytes 7-8 only, so fewer delivered bytes mean the device could
    // not receive the list it was told about: a length error. Extra delivered
    // bytes lie outside the parameter list and are ignored.
    const declared = cdb.parameterListLength;
    if (params.length < declared) return checkCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);

    const parsed = parseParameterList(cdb.action, Buffer.from(params.subarray(0, declared)), this.profile.parameterListLengthSense);
    if (!parsed.ok) return checkCondition(parsed.sense);
    const list = parsed.list;
    if (!this.profile.optionalBits && (list.aptpl || (list.kind === 'basic' && (list.specIPt || list.allTgPt)))) {
      return checkCondition(Sense.INVALID_FIELD_IN_CDB);
    }
    if (list.kind === 'basic' && list.specIPt && cdb.action !== PrOutAction.REGISTER) {
      return checkCondition(Sense.INVALID_FIELD_IN_PARAMETER_LIST);
    }

    const registration = this.registrations.get(key);
    const registering =
      cdb.action === PrOutAction.REGISTER || cdb.action === PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY;
    // An unregistered nexus may only register (SCST, CTL; LIO answers NOT READY 08/00 while nothing is reserved).
    if (registration === undefined && !registering) {
      const answer = this.profile.unregisteredWithoutReservation;
      const lioCase = this.reservation === null && cdb.action !== PrOutAction.PREEMPT && cdb.action !== PrOutAction.PREEMPT_AND_ABORT;
      return answer !== 'conflict' && lioCase ? checkCondition(answer) : conflict();
    }
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

  /** REGISTER and REGISTER AND IGNORE EXISTING KEY once the key check has passed (spc4r17 5.7.7, table 47). */
  private register(nexus: Nexus, key: string, list: BasicParameters): EngineResult {
    if (this.registrations.has(key)) {
      if (list.specIPt) return checkCondition(Sense.INVALID_FIELD_IN_PARAMETER_LIST);
      const unregistering = list.serviceActionKey === 0n;
      if (unregistering) this.unregister(key);
      else this.changeKey(this.groupOf(key), list.serviceActionKey);
      this.setAptpl(list.aptpl);
      // +1 for every successful REGISTER-family command, unregister included (SCST, tgt; LIO skips unregister).
      if (!unregistering || this.profile.generationCountsUnregister) this.bumpGeneration();
      return good();
    }

    const named = decodeTransportIdList(list.transportIdData);
    if (!named.ok) return checkCondition(Sense.INVALID_FIELD_IN_PARAMETER_LIST);
    const initiators: TransportId[] = [nexus.initiator, ...named.value];
    if (list.serviceActionKey === 0n) {
      // Nothing to register. The generation still counts the command (SCST,
      // tgt; not LIO); APTPL is untouched as no state is established.
      if (this.profile.generationCountsUnregister) this.bumpGeneration();
      return good();
    }

    const ports = list.allTgPt ? this.targetPorts : [nexus.targetPort];
    const targets = new Map<string, { initiator: TransportId; port: number }>();
    for (const initiator of initiators) {
      for (const port of ports) targets.set(nexusId(initiator, port), { initiator, port });
    }
    // SPC-4 leaves SPEC_I_PT on an already registered I_T nexus open (LIO skips,
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

  /** Unregistering the holder releases a WE/EA/RO reservation (spc4r17 5.7.11.1); only RO types announce it. */
  private unregister(key: string): void {
    const group = this.groupOf(key);
    const reservation = this.reservation;
    const heldByGroup = reservation?.holder != null && group.includes(reservation.holder);
    this.removeRegistrations(group);
    if (reservation === null || !heldByGroup) return;
    this.setReservation(null);
    const announced =
      this.profile.holderUnregisterAnnounces === 'registrants-only' ? isRegistrantsOnlyType(reservation.type) : !isAllRegistrantsType(reservation.type);
    if (announced) {
      for (const other of this.registrations.keys()) {
        this.queueUnitAttention(other, Sense.RESERVATIONS_RELEASED);
      }
    }
  }

  private reserve(key: string, cdb: PrOutCdb): EngineResult {
    // spc4r17 5.7.9. A SCOPE other than LU_SCOPE is INVALID FIELD IN CDB (SCST/tgt; LIO uses 26/00).
    if (!isPrType(cdb.type)) return checkCondition(Sense.INVALID_FIELD_IN_CDB);
    if (cdb.scope !== LU_SCOPE) return checkCondition(this.profile.reserveScopeSense);
    const type = cdb.type;
    if (this.reservation === null) {
      this.setReservation({ type, holder: isAllRegistrantsType(type) ? null : key });
      return good();
    }
    if (this.isHolder(key) && this.reservation.type === type) return good();
    return conflict();
  }

  private release(key: string, cdb: PrOutCdb): EngineResult {
    const reservation = this.reservation;
    if (reservation === null || !this.isHolder(key)) return good();
    // spc4r17 5.7.11.2; SCST/CTL/tgt majority, LIO answers RESERVATION CONFLICT.
    if (reservation.type !== cdb.type || cdb.scope !== LU_SCOPE) {
      const mismatch = this.profile.releaseMismatch;
      return mismatch === 'conflict' ? conflict() : checkCondition(mismatch);
    }
    this.setReservation(null);
    const sharedType = isRegistrantsOnlyType(reservation.type) || isAllRegistrantsType(reservation.type);
    if (this.profile.releaseAnnounces === 'registrants-types' ? sharedType : !sharedType) {
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

  /** PREEMPT and PREEMPT AND ABORT (spc4r17 5.7.11.4). */
  private preempt(key: string, cdb: PrOutCdb, list: BasicParameters, abort: boolean): EngineResult {
    const target = list.serviceActionKey;
    const reservation = this.reservation;
    const preemptsReservation =
      reservation !== null &&
      (reservation.holder === null ? target === 0n : target === this.registrations.get(reservation.holder)!.key);
    if (!preemptsReservation) {
      // SARK 0 without an all-registrants reservation is 05/26/00 (LIO, CTL; SCST answers a conflict).
      if (target === 0n) {
        if (reservation === null) return this.profile.preemptZeroWithoutReservation === 'good' ? good() : checkCondition(Sense.INVALID_FIELD_IN_PARAMETER_LIST);
        return checkCondition(this.profile.preemptZeroHeldSense);
      }
      if (this.profile.preemptChecksType && !isPrType(cdb.type)) return checkCondition(Sense.INVALID_FIELD_IN_CDB);
      return this.preemptRegistrations(key, target, abort);
    }
    // Only a preempted reservation takes on the new TYPE/SCOPE, so only then are they checked.
    if (!isPrType(cdb.type) || cdb.scope !== LU_SCOPE) return checkCondition(Sense.INVALID_FIELD_IN_CDB);
    const type = cdb.type;

    // Preempting the all-registrants reservation with SARK 0 removes every other
    // registration; otherwise those carrying the holder's key go. The sender's
    // own ALL_TG_PT group is spared, so it stays a coherent unit (see groupOf).
    const spared = new Set(this.groupOf(key));
    const victims = [...this.registrations]
      .filter(([k, r]) => !spared.has(k) && (target === 0n || r.key === target))
      .map(([k]) => k);
    this.removeRegistrations(victims);
    this.notifyPreempted(victims, key, abort);
    this.setReservation({ type, holder: isAllRegistrantsType(type) ? null : key });
    if (type !== reservation.type) {
      for (const other of this.registrations.keys()) {
        if (other !== key) this.queueUnitAttention(other, Sense.RESERVATIONS_RELEASED);
      }
    }
    this.bumpGeneration();
    return good();
  }

  /**
   * "Removing registrations" (spc4r17 5.7.11.4.4): every I_T nexus registered with `target`
   * goes, the sender included when its key matches (spec wording, which only
   * exempts the sender from the unit attention). TYPE and SCOPE are ignored
   * (spec, CTL; LIO and SCST validate TYPE).
   */
  private preemptRegistrations(key: string, target: bigint, abort: boolean): EngineResult {
    const holders = [...this.registrations].filter(([, r]) => r.key === target).map(([k]) => k);
    if (holders.length === 0) return conflict();
    const victims = this.profile.preemptRemovesSender ? holders : holders.filter((k) => k !== key);
    this.removeRegistrations(victims);
    this.notifyPreempted(victims, key, abort);
    this.bumpGeneration();
    return good();
  }

  /**
   * REGISTRATIONS PREEMPTED for each removed nexus but the sender. For
   * PREEMPT AND ABORT the engine cannot see in-flight tasks, so it treats every
   * preempted nexus as having had its tasks aborted with TAS=0 and adds
   * COMMANDS CLEARED BY ANOTHER INITIATOR, as SCST does.
   */
  private notifyPreempted(victims: readonly string[], sender: string, abort: boolean): void {
    for (const victim of victims) {
      if (victim === sender) continue;
      this.queueUnitAttention(victim, this.profile.preemptedRegistrationSense);
      if (abort) this.queueUnitAttention(victim, Sense.COMMANDS_CLEARED_BY_ANOTHER_INITIATOR);
    }
  }

  /** REGISTER AND MOVE, checks in the order of spc4r17 5.7.8, table 50. */
  private registerAndMove(nexus: Nexus, key: string, list: RegisterAndMoveParameters): EngineResult {
    // SARK 0: LIO's 05/26/00, as the field is in the parameter list (SCST points 05/24/00 at it).
    if (list.serviceActionKey === 0n) return checkCondition(Sense.INVALID_FIELD_IN_PARAMETER_LIST);
    const reservation = this.reservation;
    if (reservation === null) return checkCondition(Sense.INVALID_FIELD_IN_CDB);
    if (!this.isHolder(key) || isAllRegistrantsType(reservation.type)) return conflict();
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
    const destinationKey = nexusId(destination, list.relativeTargetPort);
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

  private persistentReserveIn(rawCdb: Buffer): EngineResult {
    const cdb = decodePrInCdb(rawCdb);
    const minimum = cdb.action === PrInAction.REPORT_CAPABILITIES ? this.profile.minimumCapabilitiesLength : this.profile.minimumAllocationLength;
    if (cdb.allocationLength < minimum) return checkCondition(Sense.INVALID_FIELD_IN_CDB);
    let data: Buffer;
    switch (cdb.action) {
      case PrInAction.READ_KEYS:
        data = encodeReadKeys({ generation: this.generation, keys: [...this.registrations.values()].map((r) => r.key) });
        break;
      case PrInAction.READ_RESERVATION:
        data = encodeReadReservation({ generation: this.generation, reservation: this.heldReservation() });
        break;
      case PrInAction.REPORT_CAPABILITIES:
        data = encodeReportCapabilities({ ...this.profile.capabilities, ptplA: this.aptpl });
        break;
      case PrInAction.READ_FULL_STATUS:
        if (!this.profile.readFullStatus) return checkCondition(Sense.INVALID_FIELD_IN_CDB);
        data = this.readFullStatus();
        break;
      default:
        return checkCondition(Sense.INVALID_FIELD_IN_CDB);
    }
    // Return what fits; truncation is never an error and length fields stay complete (spc4r17 6.13.1).
    return good(Buffer.from(data.subarray(0, cdb.allocationLength)));
  }

  private heldReservation(): { key: bigint; scope: number; type: number } | null {
    const reservation = this.reservation;
    if (reservation === null) return null;
    // The all-registrants types report key 0 (spc4r17 5.7.10).
    const key = reservation.holder === null ? 0n : this.registrations.get(reservation.holder)!.key;
    return { key, scope: LU_SCOPE, type: reservation.type };
  }

  /**
   * One descriptor per registered I_T nexus, so descriptors match READ KEYS
   * one to one and R_HOLDER/RTPI stay exact; an ALL_TG_PT registration also
   * sets ALL_TG_PT (LIO's shape; SCST reports such nexuses with 0).
   */
  private readFullStatus(): Buffer {
    const descriptors = [...this.registrations].map(([k, r]) => {
      const holder = this.isHolder(k);
      return {
        key: r.key,
        allTgPt: r.allTgPt,
        rHolder: holder,
        scope: LU_SCOPE,
        type: holder ? this.reservation!.type : 0,
        relativeTargetPort: r.targetPort,
        transportId: r.initiator,
      };
    });
    return encodeReadFullStatus({ generation: this.generation, descriptors });
  }
}
