/**
 * The vocabulary of `pr-helper validate`: a step is one PR command sent from
 * one node with a judge that turns the reply into a verdict. Pure: the bytes
 * come from src/scsi/, the replies from whoever runs the steps.
 */
import { CDB_SIZE, MAX_TRANSFER } from '../protocol/constants.js';
import { formatReservationKey, PrInAction, prInActionName, prOutActionName, prTypeAbbreviation } from '../scsi/pr-codes.js';
import { PrDataError } from '../scsi/pr-data.js';
import { describeSenseInWords, statusName } from '../scsi/pr-describe.js';
import { decodeReadKeys, decodeReadReservation, encodePrInCdb, type ReadKeys, type ReadReservation } from '../scsi/pr-in.js';
import { encodeBasicParameters, encodePrOutCdb } from '../scsi/pr-out.js';
import { decodeSense, type SenseCode } from '../scsi/sense.js';
import { ScsiStatus, SenseKey } from '../scsi/status.js';
import { explainFailure, type Explanation } from './explain.js';

/** Node 1 and node 2 of the would-be cluster: one device (I_T nexus) each. */
export type NodeName = 'A' | 'B';

export const NODE_LABEL: Readonly<Record<NodeName, string>> = { A: 'node 1', B: 'node 2' };

/** warn and info never fail a run; skip says a step could not be run and why. */
export type Verdict = 'pass' | 'fail' | 'warn' | 'info' | 'skip';

/** What a device answered, as the helper protocol carries it. */
export interface Reply {
  readonly status: number;
  readonly sense: Uint8Array;
  readonly data: Uint8Array;
}

export type Command =
  | { readonly kind: 'in'; readonly action: number; readonly allocationLength?: number }
  | { readonly kind: 'out'; readonly action: number; readonly type?: number; readonly key?: bigint; readonly saKey?: bigint };

export interface Judgement {
  readonly verdict: Verdict;
  readonly observed: string;
  readonly explanation: Explanation | null;
}

export type Judge = (reply: Reply) => Judgement;

export interface Step {
  /** Stable, for --json consumers: "wsfc.reserve-a". */
  readonly id: string;
  readonly node: NodeName;
  readonly title: string;
  readonly command: Command;
  readonly expected: string;
  /**
   * A unit attention is what the step looks for, so it must not be retried
   * away. Every other step retries once past a unit attention, as initiators
   * do (fence_scsi runs sg_turs before each command for this).
   */
  readonly expectsUnitAttention?: boolean;
  readonly judge: Judge;
}

/** The CDB (QEMU's 16 bytes) and PR OUT parameter list of a command. */
export function encodeCommand(command: Command): { cdb: Buffer; params: Buffer } {
  if (command.kind === 'in') {
    const cdb = encodePrInCdb({ action: command.action, allocationLength: command.allocationLength ?? MAX_TRANSFER }, CDB_SIZE);
    return { cdb, params: Buffer.alloc(0) };
  }
  const params = encodeBasicParameters({ reservationKey: command.key, serviceActionKey: command.saKey });
  return { cdb: encodePrOutCdb({ action: command.action, type: command.type ?? 0, parameterListLength: params.length }, CDB_SIZE), params };
}

/** "PR OUT PREEMPT WE-RO key 0x1 sa-key 0x2", for the report. */
export function describeCommand(command: Command): string {
  if (command.kind === 'in') {
    const alloc = command.allocationLength === undefined ? '' : ` (allocation length ${command.allocationLength})`;
    return `PR IN ${prInActionName(command.action)}${alloc}`;
  }
  const parts = [`PR OUT ${prOutActionName(command.action)}`];
  if (command.type) parts.push(prTypeAbbreviation(command.type));
  if (command.key !== undefined) parts.push(`key ${formatReservationKey(command.key)}`);
  if (command.saKey !== undefined) parts.push(`sa-key ${formatReservationKey(command.saKey)}`);
  return parts.join(' ');
}

export function senseOf(reply: Reply): SenseCode | null {
  return reply.status === ScsiStatus.CHECK_CONDITION ? decodeSense(reply.sense) : null;
}

export function isUnitAttention(reply: Reply): boolean {
  return senseOf(reply)?.key === SenseKey.UNIT_ATTENTION;
}

/** "GOOD", "RESERVATION CONFLICT", "CHECK CONDITION, NOT READY 08/00 (logical unit communication failure)". */
export function describeStatus(reply: Reply): string {
  const name = statusName(reply.status);
  if (reply.status !== ScsiStatus.CHECK_CONDITION) return name;
  return `${name}, ${describeSenseInWords(reply.sense) ?? 'without valid sense data'}`;
}

const keyList = (keys: readonly bigint[]): string => (keys.length === 0 ? 'none' : keys.map(formatReservationKey).join(', '));

export function describeKeys(r: ReadKeys): string {
  return `GOOD, generation 0x${r.generation.toString(16)}, keys: ${keyList(r.keys)}`;
}

export function describeReservation(r: ReadReservation): string {
  const res = r.reservation;
  if (res === null) return `GOOD, generation 0x${r.generation.toString(16)}, no reservation`;
  const key = res.key === null ? 'key cut off' : `key ${formatReservationKey(res.key)}`;
  return `GOOD, reservation ${res.type === null ? 'of unknown type' : prTypeAbbreviation(res.type)} ${key}`;
}

const pass = (observed: string): Judgement => ({ verdict: 'pass', observed, explanation: null });
const fail = (observed: string, explanation: Explanation | null): Judgement => ({ verdict: 'fail', observed, explanation });

/**
 * A judge for a reply that must be GOOD; `then` judges its data. Any other
 * status fails with the known cause, if there is one, for `command`.
 */
export function expectGood(command: Command, then?: (data: Uint8Array) => Judgement): Judge {
  return (reply) => {
    if (reply.status !== ScsiStatus.GOOD) return fail(describeStatus(reply), explainFailure(command, reply));
    return then ? then(reply.data) : pass('GOOD');
  };
}

/** A judge for a command that must be refused with RESERVATION CONFLICT; `whenGood` explains a GOOD. */
export function expectConflict(command: Command, whenGood: Explanation): Judge {
  return (reply) => {
    if (reply.status === ScsiStatus.RESERVATION_CONFLICT) return pass('RESERVATION CONFLICT');
    if (reply.status === ScsiStatus.GOOD) return fail('GOOD', whenGood);
    return fail(describeStatus(reply), explainFailure(command, reply));
  };
}

/**
 * A judge for the first command after another node preempted or cleared:
 * UNIT ATTENTION with `asc/ascq`. Its absence is a warning, not a failure:
 * on a host, other I/O on the same nexus (the kernel's own) may take it first.
 */
export function expectUnitAttention(command: Command, code: { asc: number; ascq: number }, name: string): Judge {
  return (reply) => {
    const sense = senseOf(reply);
    if (sense?.key === SenseKey.UNIT_ATTENTION && sense.asc === code.asc && sense.ascq === code.ascq) return pass(describeStatus(reply));
    if (reply.status === ScsiStatus.GOOD || sense?.key === SenseKey.UNIT_ATTENTION) {
      return {
        verdict: 'warn',
        observed: describeStatus(reply),
        explanation: {
          cause: `no ${name} unit attention reached this nexus; another command on it (the host kernel's own I/O) may have taken it first`,
          fix: 'nothing to do if the guest sees it; QEMU passes unit attentions to the guest',
        },
      };
    }
    return fail(describeStatus(reply), explainFailure(command, reply));
  };
}

function decoded<T>(data: Uint8Array, decode: (d: Uint8Array) => T, judge: (value: T) => Judgement): Judgement {
  try {
    return judge(decode(data));
  } catch (err) {
    if (!(err instanceof PrDataError)) throw err;
    return fail(`GOOD, ${err.message}`, {
      cause: 'the device returned less parameter data than the header needs',
      fix: 'a target bug: report it to the target vendor',
    });
  }
}

export interface KeyExpectation {
  /** Keys that must be listed, each at least once. */
  readonly present?: readonly bigint[];
  /** Keys that must be absent. */
  readonly absent?: readonly bigint[];
  /** Keys that must be listed exactly once. */
  readonly once?: readonly bigint[];
  /** Why a violated expectation happens, when a likely cause is known (given the keys listed). */
  readonly whenWrong?: Explanation | ((keys: readonly bigint[]) => Explanation);
}

/** Expectation text for a READ KEYS step. */
export function keysExpected(e: KeyExpectation): string {
  const parts: string[] = [];
  if (e.present?.length) parts.push(`lists ${keyList(e.present)}`);
  if (e.once?.length) parts.push(`lists ${keyList(e.once)} exactly once`);
  if (e.absent?.length) parts.push(`not ${keyList(e.absent)}`);
  return `GOOD, ${parts.join('; ')}`;
}

export function readKeysStep(id: string, node: NodeName, title: string, e: KeyExpectation): Step {
  const command: Command = { kind: 'in', action: PrInAction.READ_KEYS };
  return {
    id,
    node,
    title,
    command,
    expected: keysExpected(e),
    judge: expectGood(command, (data) =>
      decoded(data, decodeReadKeys, (r) => {
        const count = (k: bigint): number => r.keys.filter((x) => x === k).length;
        const ok =
          (e.present ?? []).every((k) => count(k) > 0) &&
          (e.absent ?? []).every((k) => count(k) === 0) &&
          (e.once ?? []).every((k) => count(k) === 1) &&
          !r.truncated;
        if (ok) return pass(describeKeys(r));
        const why = typeof e.whenWrong === 'function' ? e.whenWrong(r.keys) : (e.whenWrong ?? null);
        return fail(describeKeys(r), why);
      }),
    ),
  };
}

export interface ReservationExpectation {
  /** null: no reservation may be held. */
  readonly held: { readonly key: bigint; readonly type: number } | null;
  readonly whenWrong?: Explanation;
}

export function readReservationStep(id: string, node: NodeName, title: string, e: ReservationExpectation): Step {
  const command: Command = { kind: 'in', action: PrInAction.READ_RESERVATION };
  const expected =
    e.held === null ? 'GOOD, no reservation' : `GOOD, reservation ${prTypeAbbreviation(e.held.type)} key ${formatReservationKey(e.held.key)}`;
  return {
    id,
    node,
    title,
    command,
    expected,
    judge: expectGood(command, (data) =>
      decoded(data, decodeReadReservation, (r) => {
        const res = r.reservation;
        const ok = e.held === null ? res === null : res !== null && res.key === e.held.key && res.type === e.held.type;
        return ok ? pass(describeReservation(r)) : fail(describeReservation(r), e.whenWrong ?? null);
      }),
    ),
  };
}

export function outStep(id: string, node: NodeName, title: string, command: Command & { kind: 'out' }, outcome: 'good' | { conflict: Explanation }): Step {
  if (outcome === 'good') return { id, node, title, command, expected: 'GOOD', judge: expectGood(command) };
  return { id, node, title, command, expected: 'RESERVATION CONFLICT', judge: expectConflict(command, outcome.conflict) };
}
