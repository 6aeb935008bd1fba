/**
 * dm-multipath, the pure half: which PR commands must reach every path (every
 * I_T nexus) of a map and which go to one working path, what counts as a path
 * (transport) failure rather than an answer of the device, and how the answers
 * of several paths become the one reply the guest sees. No I/O, no logging;
 * multipath.ts executes the decisions.
 *
 * The goal is that a guest sees what a single-path LUN would answer, with the
 * map's paths acting as one "virtual" I_T nexus:
 *   - REGISTER and REGISTER AND IGNORE EXISTING KEY go to every path; a path
 *     that missed an earlier registration is repaired, a partial failure is
 *     rolled back where that is possible.
 *   - RELEASE goes to every path too (only the holder's nexus can release; the
 *     others answer GOOD without effect), then the reservation is read back.
 *   - Everything else goes to one path, moving on after a path failure and also
 *     after RESERVATION CONFLICT (a conflict means the command was not performed;
 *     another path's nexus may hold the reservation or the registration).
 *   - PR IN goes to one path, moving on after a path failure only.
 *
 * The original's multipath path is QEMU scsi/qemu-pr-helper.c multipath_pr_in
 * and multipath_pr_out over libmpathpersist; the bytes are read and built by
 * the codec in src/scsi/.
 */
import type { CommandResult } from '../protocol/response.js';
import { isAllRegistrantsType, LU_SCOPE, PR_CDB_LENGTH, PrOutAction } from '../scsi/pr-codes.js';
import { PrDataError } from '../scsi/pr-data.js';
import {
  decodeReadKeys,
  decodeReadReservation,
  decodeReportCapabilities,
  encodePrInCdb,
  type ReservationDescriptor,
} from '../scsi/pr-in.js';
import {
  BASIC_PARAMETER_LIST_LENGTH,
  decodeBasicParameters,
  decodePrOutCdb,
  decodeRegisterAndMoveParameters,
  encodeBasicParameters,
  encodePrOutCdb,
} from '../scsi/pr-out.js';
import { decodeSense, fixedSense, Sense, type SenseCode } from '../scsi/sense.js';
import { ScsiStatus, SenseKey } from '../scsi/status.js';
import { DRIVER_STATUS_BUSY_MASK, HostStatus, mapSgioOutcome, SGIO_SENSE_LENGTH, type SgioOutcome } from './sgio-result.js';

/** How often a path that answered UNIT ATTENTION gets the same command again during a fan-out. */
export const UNIT_ATTENTION_RETRIES = 3;

// ---------------------------------------------------------------------------
// Per-path results

/** The device answered through this path (whatever the status). */
export interface PathAnswer {
  readonly kind: 'answer';
  readonly path: string;
  readonly status: number;
  /** Always 96 bytes. */
  readonly sense: Buffer;
  /** PR IN with GOOD: the valid bytes (dxfer_len - resid); otherwise null. */
  readonly data: Buffer | null;
}

/** The command did not get a (usable) answer from the device through this path. */
export interface PathFailure {
  readonly kind: 'failure';
  readonly path: string;
  /** For the log: what went wrong (errno, host_status, sense, state, ...). */
  readonly reason: string;
  /** What the guest gets if every path fails this way. */
  readonly reply: CommandResult;
  /** False when the command certainly did not reach the device (path skipped, open failed). */
  readonly mayHaveExecuted: boolean;
}

export type PathResult = PathAnswer | PathFailure;

const sense96 = (code: SenseCode): Buffer => {
  const out = Buffer.alloc(SGIO_SENSE_LENGTH);
  fixedSense(code).copy(out);
  return out;
};

export const checkCondition = (code: SenseCode): CommandResult => ({ status: ScsiStatus.CHECK_CONDITION, sense: sense96(code) });

/**
 * The reply when no path could be used at all (none listed, all skipped or
 * unopenable): LOGICAL UNIT COMMUNICATION FAILURE, which is also what the
 * original answers for libmpathpersist's "no usable path" class of errors.
 */
export const NO_PATH_REPLY: CommandResult = checkCondition(Sense.LUN_COMMUNICATION_FAILURE);

/** A path that was never tried (state offline, open failed, ...). */
export function unreachable(path: string, reason: string): PathFailure {
  return { kind: 'failure', path, reason, reply: NO_PATH_REPLY, mayHaveExecuted: false };
}

/**
 * host_status values that describe the device's answer rather than the path:
 * the kernel does not fail a path over for them either (blk_path_error():
 * TARGET, NEXUS = reservation conflict, NOSPC, MEDIUM).
 */
const DEVICE_HOST_STATUSES: ReadonlySet<number> = new Set([
  HostStatus.TARGET_FAILURE,
  HostStatus.NEXUS_FAILURE,
  HostStatus.ALLOC_FAILURE,
  HostStatus.MEDIUM_ERROR,
]);

/**
 * CHECK CONDITION sense that means "not through this path" (the command was not
 * performed): ALUA transitioning / standby / unavailable / offline port, the LUN
 * not reachable through this target port (RHEL-158212: to be retried during
 * failover, not reported), and ABORTED COMMAND (transport-level abort).
 */
export function isPathSense(sense: Uint8Array): boolean {
  const code = decodeSense(sense);
  if (!code) return false;
  if (code.key === SenseKey.ABORTED_COMMAND) return true;
  if (code.key === SenseKey.NOT_READY && code.asc === 0x04 && [0x0a, 0x0b, 0x0c, 0x12].includes(code.ascq)) return true;
  return code.key === SenseKey.ILLEGAL_REQUEST && code.asc === 0x25 && code.ascq === 0x00;
}

export function isUnitAttention(result: PathResult): result is PathAnswer {
  return result.kind === 'answer' && result.status === ScsiStatus.CHECK_CONDITION && decodeSense(result.sense)?.key === SenseKey.UNIT_ATTENTION;
}

const hex2 = (n: number): string => `0x${n.toString(16).padStart(2, '0')}`;

/**
 * One SG_IO outcome on one path -> answer or path failure. The reply a failure
 * carries is the same mapping the single-path backend uses (sgio-result.ts).
 *
 * @param dxferLen the dxfer_len given to SG_IO (8192 for PR IN, N for PR OUT)
 */
export function classifyOutcome(path: string, outcome: SgioOutcome, dxferLen: number, data?: Buffer): PathResult {
  const mapped = mapSgioOutcome(outcome, dxferLen);
  const reply: CommandResult = { status: mapped.status, sense: mapped.sense };
  if (outcome.errno !== 0) return { kind: 'failure', path, reason: `SG_IO failed with errno ${outcome.errno}`, reply, mayHaveExecuted: true };
  if (outcome.hostStatus !== HostStatus.OK && !DEVICE_HOST_STATUSES.has(outcome.hostStatus)) {
    return { kind: 'failure', path, reason: `host_status ${hex2(outcome.hostStatus)}`, reply, mayHaveExecuted: true };
  }
  if (outcome.hostStatus === HostStatus.OK && (outcome.driverStatus & DRIVER_STATUS_BUSY_MASK) !== 0) {
    return { kind: 'failure', path, reason: `driver_status ${hex2(outcome.driverStatus)}`, reply, mayHaveExecuted: true };
  }
  if (outcome.hostStatus === HostStatus.OK && outcome.status === ScsiStatus.TASK_ABORTED) {
    return { kind: 'failure', path, reason: 'TASK ABORTED', reply, mayHaveExecuted: false };
  }
  if (mapped.status === ScsiStatus.CHECK_CONDITION && outcome.hostStatus === HostStatus.OK && isPathSense(mapped.sense)) {
    const code = decodeSense(mapped.sense)!;
    return {
      kind: 'failure',
      path,
      reason: `sense ${code.key.toString(16)}/${hex2(code.asc)}/${hex2(code.ascq)}`,
      reply,
      mayHaveExecuted: false,
    };
  }
  const valid = mapped.status === ScsiStatus.GOOD && data ? data.subarray(0, mapped.transferred) : null;
  return { kind: 'answer', path, status: mapped.status, sense: mapped.sense, data: valid };
}

const replyOf = (r: PathResult): CommandResult => (r.kind === 'answer' ? { status: r.status, sense: r.sense, data: r.data } : r.reply);

// ---------------------------------------------------------------------------
// PR OUT: decoding and the plan

export interface OutCommand {
  readonly action: number;
  readonly scope: number;
  readonly type: number;
  /** RESERVATION KEY (bytes 0-7). */
  readonly key: bigint;
  /** SERVICE ACTION RESERVATION KEY (bytes 8-15). */
  readonly saKey: bigint;
  readonly specIpt: boolean;
  readonly allTgPt: boolean;
  /** APTPL of the basic list (byte 20 bit 0) or of REGISTER AND MOVE (byte 17 bit 0). */
  readonly aptpl: boolean;
  /** REGISTER AND MOVE only: UNREG (byte 17 bit 1). */
  readonly unreg: boolean;
}

/** What to do after a one-path PR OUT succeeded, so the map keeps acting as one nexus. */
export type AfterSingle =
  | 'none'
  /** PREEMPT (AND ABORT) naming our own key or 0: the device removed our other paths' registrations. */
  | 'restore-other-paths'
  /** REGISTER AND MOVE with UNREG: the sender path was unregistered, so are the others. */
  | 'unregister-other-paths';

export type FanOutMode = 'register' | 'register-ignore' | 'release';

export type OutPlan =
  | { readonly kind: 'reply'; readonly result: CommandResult; readonly why: string }
  | { readonly kind: 'fan-out'; readonly mode: FanOutMode; readonly command: OutCommand }
  | {
      readonly kind: 'single';
      readonly command: OutCommand;
      readonly after: AfterSingle;
      /** RESERVE: a conflict may come from our own holder nexus on an unreachable path. */
      readonly checkOwnReservation: boolean;
    };

/** The CDB and a parameter list of at least 24 bytes, as the plan needs them. */
export function decodeOutCommand(cdb: Buffer, params: Buffer): OutCommand {
  const { action, scope, type } = decodePrOutCdb(cdb);
  if (action === PrOutAction.REGISTER_AND_MOVE) {
    const list = decodeRegisterAndMoveParameters(params);
    const keys = { key: list.reservationKey, saKey: list.serviceActionKey };
    return { action, scope, type, ...keys, specIpt: false, allTgPt: false, aptpl: list.aptpl, unreg: list.unreg };
  }
  const list = decodeBasicParameters(params);
  const keys = { key: list.reservationKey, saKey: list.serviceActionKey };
  return { action, scope, type, ...keys, specIpt: list.specIPt, allTgPt: list.allTgPt, aptpl: list.aptpl, unreg: false };
}

/**
 * PR OUT on a map. Like the original (multipath_pr_out), a parameter list
 * shorter than 24 bytes is answered PARAMETER LIST LENGTH ERROR without
 * touching a path. Everything
 * else the device validates itself, on the first path that answers: the CDB and
 * parameter list go out verbatim (service action, scope/type, SPEC_I_PT
 * TransportIDs, lengths), which is how a single-path LUN would judge them.
 */
export function planOut(cdb: Buffer, params: Buffer): OutPlan {
  if (params.length < BASIC_PARAMETER_LIST_LENGTH) {
    return { kind: 'reply', result: checkCondition(Sense.PARAMETER_LIST_LENGTH_ERROR), why: 'parameter list shorter than 24 bytes' };
  }
  const command = decodeOutCommand(cdb, params);
  switch (command.action) {
    case PrOutAction.REGISTER:
      return { kind: 'fan-out', mode: 'register', command };
    case PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY:
      return { kind: 'fan-out', mode: 'register-ignore', command };
    case PrOutAction.RELEASE:
      return { kind: 'fan-out', mode: 'release', command };
    case PrOutAction.RESERVE:
      return { kind: 'single', command, after: 'none', checkOwnReservation: true };
    case PrOutAction.PREEMPT:
    case PrOutAction.PREEMPT_AND_ABORT: {
      const self = command.key !== 0n && (command.saKey === command.key || command.saKey === 0n);
      return { kind: 'single', command, after: self ? 'restore-other-paths' : 'none', checkOwnReservation: false };
    }
    case PrOutAction.REGISTER_AND_MOVE:
      return { kind: 'single', command, after: command.unreg ? 'unregister-other-paths' : 'none', checkOwnReservation: false };
    default:
      // CLEAR, REPLACE LOST RESERVATION, reserved codes: one path; the device decides.
      return { kind: 'single', command, after: 'none', checkOwnReservation: false };
  }
}

// ---------------------------------------------------------------------------
// One path at a time

/**
 * After one path's result: stop with it, or try the next path. PR IN moves on
 * after path failures only. PR OUT also moves on after RESERVATION CONFLICT:
 * the command was not performed, and another path's nexus may be the holder or
 * the one that kept the registration (a single-path LUN would have accepted it).
 */
export function singleStep(result: PathResult, direction: 'in' | 'out'): 'done' | 'next' {
  if (result.kind === 'failure') return 'next';
  if (direction === 'out' && result.status === ScsiStatus.RESERVATION_CONFLICT) return 'next';
  return 'done';
}

/**
 * The reply once every path was tried without a 'done': the first RESERVATION
 * CONFLICT (no path's nexus could perform it), else the last failure's mapped
 * status, else "no path".
 */
export function exhaustedReply(results: readonly PathResult[]): CommandResult {
  const conflict = results.find((r) => r.kind === 'answer' && r.status === ScsiStatus.RESERVATION_CONFLICT);
  if (conflict) return replyOf(conflict);
  const tried = results.filter((r): r is PathFailure => r.kind === 'failure' && r.mayHaveExecuted);
  if (tried.length > 0) return tried[tried.length - 1]!.reply;
  const failures = results.filter((r): r is PathFailure => r.kind === 'failure');
  return failures.length > 0 ? failures[failures.length - 1]!.reply : NO_PATH_REPLY;
}

// ---------------------------------------------------------------------------
// PR IN data the executor needs

/** READ RESERVATION data -> the reservation, or null if none is held. Throws PrDataError on data too short to tell. */
export function parseReadReservation(data: Uint8Array): ReservationDescriptor | null {
  const { reservation } = decodeReadReservation(data);
  if (reservation === null) return null;
  const { key, scope, type } = reservation;
  if (key === null || scope === null || type === null) throw new PrDataError('READ RESERVATION descriptor cut off');
  return { key, scope, type };
}

/** READ KEYS data -> the keys that fit. */
export function parseReadKeys(data: Uint8Array): bigint[] {
  return decodeReadKeys(data).keys;
}

/** REPORT CAPABILITIES data -> PTPL_A (persist through power loss currently active). */
export function parsePtplActive(data: Uint8Array): boolean {
  return decodeReportCapabilities(data).ptplA;
}

/**
 * Whether the reservation is held by one of the map's nexuses, as far as can be
 * told: registrants of one initiator share its key (keys are unique per cluster
 * node, which is what libmpathpersist assumes too). Not decidable for the
 * all-registrants types (key 0).
 */
export function heldWithKey(reservation: ReservationDescriptor | null, key: bigint): boolean {
  return reservation !== null && !isAllRegistrantsType(reservation.type) && key !== 0n && reservation.key === key;
}

/**
 * RESERVE answered RESERVATION CONFLICT on every path we could reach while some
 * path was unreachable: if the reservation carries our key with the requested
 * scope and type, an unreachable path's nexus is the holder, and a single-path
 * LUN would answer a holder's repeated RESERVE with GOOD.
 */
export function reserveHeldByUnreachablePath(command: OutCommand, reservation: ReservationDescriptor | null): boolean {
  return heldWithKey(reservation, command.key) && reservation!.type === command.type && reservation!.scope === command.scope;
}

/** PREEMPT (AND ABORT) of another registrant's key: the fencing command (fence_scsi -o off). */
export function preemptsAnother(command: OutCommand): boolean {
  return (
    (command.action === PrOutAction.PREEMPT || command.action === PrOutAction.PREEMPT_AND_ABORT) &&
    command.key !== 0n &&
    command.saKey !== 0n &&
    command.saKey !== command.key
  );
}

/**
 * A PREEMPT of another key went to a path that failed without an answer, and
 * the next path answered RESERVATION CONFLICT: if the preempted key is no
 * longer registered and the reservation is held with our key (scope and type
 * as asked), the failed path performed it and the conflict only says that the
 * key was gone already. A single-path LUN would have answered GOOD.
 */
export function preemptDone(command: OutCommand, keys: readonly bigint[], reservation: ReservationDescriptor | null): boolean {
  return !keys.includes(command.saKey) && heldWithKey(reservation, command.key) && reservation!.type === command.type && reservation!.scope === command.scope;
}

// ---------------------------------------------------------------------------
// Fan-out

/** REGISTER AND IGNORE EXISTING KEY sent to some paths to make them agree with the others. */
export interface Repair {
  readonly why: 'missed-registration' | 'rollback';
  readonly paths: readonly string[];
  /** The key those paths must end up with (0 = unregistered). */
  readonly saKey: bigint;
  readonly allTgPt: boolean;
  readonly aptpl: boolean;
}

export type FanOutDecision =
  /** Some paths answered UNIT ATTENTION (not performed) while others performed it: send it to them again. */
  | { readonly kind: 'retry'; readonly paths: readonly string[] }
  /** RELEASE: read the reservation back before answering. */
  | { readonly kind: 'verify-release' }
  | { readonly kind: 'reply'; readonly result: CommandResult; readonly repair?: Repair; readonly note?: string };

const GOOD_REPLY: CommandResult = { status: ScsiStatus.GOOD };

function firstNonConflictError(answers: readonly PathAnswer[]): PathAnswer | undefined {
  return answers.find((a) => a.status !== ScsiStatus.GOOD && a.status !== ScsiStatus.RESERVATION_CONFLICT);
}

/**
 * Combines the latest result of every path of a fan-out.
 *
 * @param results one per path (skipped paths as unreachable failures)
 * @param retriesLeft whether paths that answered UNIT ATTENTION may be retried
 */
export function decideFanOut(mode: FanOutMode, command: OutCommand, results: readonly PathResult[], retriesLeft: boolean): FanOutDecision {
  const answers = results.filter((r): r is PathAnswer => r.kind === 'answer');
  if (answers.length === 0) return { kind: 'reply', result: exhaustedReply(results), note: 'no path answered' };

  // A UNIT ATTENTION means "not performed, here is news". If some paths performed
  // the command, the others must perform it too; if none did, the guest gets the
  // UA exactly as from a single-path LUN and retries.
  const attention = answers.filter(isUnitAttention);
  const performed = answers.filter((a) => !isUnitAttention(a));
  if (performed.length === 0) return { kind: 'reply', result: replyOf(attention[0]!), note: 'unit attention on every path' };
  if (attention.length > 0 && retriesLeft) return { kind: 'retry', paths: attention.map((a) => a.path) };

  const good = answers.filter((a) => a.status === ScsiStatus.GOOD);
  const conflict = answers.filter((a) => a.status === ScsiStatus.RESERVATION_CONFLICT);
  const lost = results.some((r) => r.kind === 'failure');

  if (mode === 'release') {
    if (good.length === answers.length && !lost) return { kind: 'reply', result: GOOD_REPLY };
    return { kind: 'verify-release' };
  }

  if (good.length === answers.length) {
    return { kind: 'reply', result: GOOD_REPLY, ...(lost ? { note: 'some paths were not reached and keep their old registration' } : {}) };
  }
  const error = firstNonConflictError(answers);
  if (good.length === 0) {
    // Performed nowhere: any answer is a truthful one; the specific error beats a conflict.
    return { kind: 'reply', result: replyOf(error ?? conflict[0]!) };
  }

  if (mode === 'register-ignore') {
    // Nothing to roll back to (the old keys are unknown), but R&IEK is idempotent:
    // report the error, the guest's retry makes the paths agree again.
    return { kind: 'reply', result: replyOf(error ?? conflict[0]!), note: 'paths disagree after a partial REGISTER AND IGNORE EXISTING KEY' };
  }

  // REGISTER, performed on some paths only.
  const goodPaths = good.map((a) => a.path);
  if (error) {
    // A real error on some path: undo the others (back to RK; RK 0 = unregistered).
    return {
      kind: 'reply',
      result: replyOf(error),
      repair: { why: 'rollback', paths: goodPaths, saKey: command.key, allTgPt: command.allTgPt, aptpl: command.aptpl },
    };
  }
  // GOOD + RESERVATION CONFLICT only.
  if (command.key !== 0n) {
    // A path accepted RK, so the map's nexus held RK; the conflicting paths missed
    // an earlier registration (or unregistration): give them the new key.
    return {
      kind: 'reply',
      result: GOOD_REPLY,
      repair: {
        why: 'missed-registration',
        paths: conflict.map((a) => a.path),
        saKey: command.saKey,
        allTgPt: command.allTgPt,
        aptpl: command.aptpl,
      },
    };
  }
  // RK 0 is accepted only by unregistered nexuses: the conflicting paths show that
  // the map's nexus was registered, so a single-path LUN would have said
  // RESERVATION CONFLICT. Undo the paths that registered.
  return {
    kind: 'reply',
    result: replyOf(conflict[0]!),
    ...(command.saKey !== 0n
      ? { repair: { why: 'rollback' as const, paths: goodPaths, saKey: 0n, allTgPt: command.allTgPt, aptpl: command.aptpl } }
      : {}),
  };
}

export type ReleaseDecision =
  | { readonly kind: 'reply'; readonly result: CommandResult; readonly note?: string }
  /**
   * Our key still holds the reservation and the holder's path was not reached:
   * move the reservation to a reachable path (PREEMPT with our own key), release
   * it there and re-register the map's other paths.
   */
  | { readonly kind: 'take-over'; readonly reservation: ReservationDescriptor };

/**
 * RELEASE after the fan-out, given the reservation read back (undefined: it
 * could not be read).
 */
export function decideRelease(command: OutCommand, results: readonly PathResult[], reservation: ReservationDescriptor | null | undefined): ReleaseDecision {
  const answers = results.filter((r): r is PathAnswer => r.kind === 'answer');
  const good = answers.some((a) => a.status === ScsiStatus.GOOD);
  const error = firstNonConflictError(answers);
  const conflict = answers.find((a) => a.status === ScsiStatus.RESERVATION_CONFLICT);
  const failures = results.filter((r): r is PathFailure => r.kind === 'failure');
  const worst = (): CommandResult => (error ? replyOf(error) : failures.length > 0 ? exhaustedReply(failures) : conflict ? replyOf(conflict) : NO_PATH_REPLY);

  if (reservation === undefined) return { kind: 'reply', result: worst(), note: 'reservation could not be read back' };
  if (!heldWithKey(reservation, command.key)) {
    // Released, or never ours (a non-holder's RELEASE is GOOD without effect).
    return { kind: 'reply', result: good ? GOOD_REPLY : worst() };
  }
  // Still held with our key.
  if (error) return { kind: 'reply', result: replyOf(error) }; // the holder's own answer (e.g. 05/26/04)
  if (failures.length > 0) {
    if (reservation!.type !== command.type || reservation!.scope !== command.scope) {
      return { kind: 'reply', result: checkCondition(Sense.INVALID_RELEASE_OF_PERSISTENT_RESERVATION), note: 'RELEASE type/scope differ from the reservation held by an unreachable path' };
    }
    return { kind: 'take-over', reservation: reservation! };
  }
  // Every path answered and none released it: the holder refused (LIO answers a
  // type mismatch with RESERVATION CONFLICT).
  return { kind: 'reply', result: conflict ? replyOf(conflict) : worst() };
}

// ---------------------------------------------------------------------------
// Commands the executor builds itself (10-byte CDBs, 24-byte parameter lists)

export function prInCommand(action: number, allocationLength = 8192): Buffer {
  return encodePrInCdb({ action, allocationLength }, PR_CDB_LENGTH);
}

export interface BuiltOut {
  readonly cdb: Buffer;
  readonly params: Buffer;
}

export function prOutCommand(action: number, scope: number, type: number, key: bigint, saKey: bigint, flags: { allTgPt?: boolean; aptpl?: boolean } = {}): BuiltOut {
  const params = encodeBasicParameters({ reservationKey: key, serviceActionKey: saKey, allTgPt: flags.allTgPt, aptpl: flags.aptpl });
  return { cdb: encodePrOutCdb({ action, scope, type, parameterListLength: params.length }), params };
}

/** REGISTER AND IGNORE EXISTING KEY, as a repair sends it (SPEC_I_PT never set). */
export function repairCommand(repair: Pick<Repair, 'saKey' | 'allTgPt' | 'aptpl'>): BuiltOut {
  return prOutCommand(PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, LU_SCOPE, 0, 0n, repair.saKey, repair);
}

// ---------------------------------------------------------------------------
// Keeping every path on the map's key

/**
 * The PR OUT actions that act on the reservation as the map's nexus: before
 * them every usable path must carry the key the guest names, or a stale path
 * could answer RESERVATION CONFLICT for the map, or hold a reservation the
 * map's RELEASE never reaches (libmpathpersist 0.13 checks the same before
 * releasing or preempting).
 */
export function checksKeyFirst(action: number): boolean {
  return action === PrOutAction.RESERVE || action === PrOutAction.PREEMPT || action === PrOutAction.PREEMPT_AND_ABORT || action === PrOutAction.RELEASE;
}

/**
 * REGISTER with RK = SARK = the key, the daemon's question "does this path's
 * nexus carry the key?": GOOD means it is registered with exactly that key and
 * nothing changes; RESERVATION CONFLICT means it is unregistered or carries
 * another key (SPC-4 5.14.7, REGISTER by an unregistered nexus with a non-zero
 * RK, or with an RK that is not its key). Keeps the device's APTPL state.
 */
export function carriesKeyProbe(key: bigint, flags: { allTgPt: boolean; aptpl: boolean }): BuiltOut {
  return prOutCommand(PrOutAction.REGISTER, LU_SCOPE, 0, key, key, flags);
}

export interface CarryVerdict {
  /** Registered with the key. */
  readonly carrying: readonly string[];
  /** Answered: not registered with the key. */
  readonly stale: readonly string[];
  /** No usable answer: unknown. */
  readonly unknown: readonly string[];
}

/** Sorts the answers to carriesKeyProbe. */
export function carryVerdict(results: readonly PathResult[]): CarryVerdict {
  const pick = (f: (r: PathResult) => boolean) => results.filter(f).map((r) => r.path);
  return {
    carrying: pick((r) => r.kind === 'answer' && r.status === ScsiStatus.GOOD),
    stale: pick((r) => r.kind === 'answer' && r.status === ScsiStatus.RESERVATION_CONFLICT),
    unknown: pick((r) => r.kind === 'failure' || (r.status !== ScsiStatus.GOOD && r.status !== ScsiStatus.RESERVATION_CONFLICT)),
  };
}

/**
 * Before a stale path gets the map's key back: the key must still be
 * registered on the logical unit (READ KEYS lists every nexus's key). If it
 * is not, another node removed it (PREEMPT, CLEAR): registering it again
 * would undo a fence, so the map's key is forgotten instead. Null: the data
 * is too short to tell, or cut off before the key could have been listed.
 */
export function keyStillRegistered(readKeysData: Uint8Array, key: bigint): boolean | null {
  try {
    const list = decodeReadKeys(readKeysData);
    if (list.keys.includes(key)) return true;
    return list.truncated ? null : false;
  } catch (err) {
    if (err instanceof PrDataError) return null;
    throw err;
  }
}
