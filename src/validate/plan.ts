/**
 * What `pr-helper validate` checks, as flows of steps. Pure: keys, the number
 * of nexuses and what the device reported are inputs.
 *
 * - wsfc: the primitives of [MS-CSVP] (ClusPrep: CprepDiskPRRegister is
 *   REGISTER AND IGNORE EXISTING KEY, CprepDiskPRUnRegister the same with
 *   SARK 0; Reserve, IsPRPresent, FindKey, Preempt, Release, Clear) in the
 *   order field reports of "Validate SCSI-3 Persistent Reservation" show.
 *   Microsoft does not publish the reservation type the validator uses;
 *   WE-RO, what cluster disks are commonly reported to hold, is used here.
 * - fence_scsi: the sequence of fence-agents agents/scsi/fence_scsi.py
 *   (unfence: READ KEYS, REGISTER AND IGNORE EXISTING KEY, own-key PREEMPT
 *   against stale nexuses, RESERVE type 5; fence: PREEMPT AND ABORT of the
 *   victim; the fence_scsi_check watchdog's READ KEYS).
 */
import { formatReservationKey, isAllRegistrantsType, PrInAction, PrOutAction, PrType, prTypeAbbreviation } from '../scsi/pr-codes.js';
import { decodeReadKeys, decodeReportCapabilities, type ReportCapabilities } from '../scsi/pr-in.js';
import { Sense } from '../scsi/sense.js';
import { ScsiStatus } from '../scsi/status.js';
import { NOT_SAME_LUN, NOT_SHARED, RESERVATION_NOT_REPORTED, SAME_NEXUS, type Explanation } from './explain.js';
import {
  expectGood,
  expectUnitAttention,
  outStep,
  readKeysStep,
  readReservationStep,
  type Command,
  type Judgement,
  type NodeName,
  type Reply,
  type Step,
} from './steps.js';

export type Profile = 'wsfc' | 'fence_scsi' | 'all';
export const PROFILES: readonly Profile[] = ['wsfc', 'fence_scsi', 'all'];

export interface Keys {
  readonly A: bigint;
  readonly B: bigint;
}

/** What earlier steps learnt about the device. */
export interface Observations {
  /** The TYPEs REPORT CAPABILITIES lists (TMV set); null until known or when it failed. */
  supportedTypes: number[] | null;
}

export interface FlowContext {
  readonly keys: Keys;
  readonly twoNodes: boolean;
  /** Registrations of others exist (--force): nothing may CLEAR them. */
  readonly foreign: boolean;
  readonly observations: Observations;
}

export interface Flow {
  readonly id: string;
  readonly title: string;
  /** The steps, or why the flow cannot run in this context. */
  steps(context: FlowContext): Step[] | { skip: string };
  /** Lines the report prints before the steps (what is not checked, and why). */
  notes(context: FlowContext): string[];
}

/** What cluster nodes reserve with: WE-RO (fence_scsi's type 5, and WSFC's as reported). */
const CLUSTER_TYPE = PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY;
const WE_RO = prTypeAbbreviation(CLUSTER_TYPE);

const register = (saKey: bigint): Command & { kind: 'out' } => ({ kind: 'out', action: PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, saKey });
const unregister: Command & { kind: 'out' } = { kind: 'out', action: PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, saKey: 0n };
const reserve = (key: bigint, type: number): Command & { kind: 'out' } => ({ kind: 'out', action: PrOutAction.RESERVE, type, key });
const release = (key: bigint, type: number): Command & { kind: 'out' } => ({ kind: 'out', action: PrOutAction.RELEASE, type, key });
const preempt = (key: bigint, saKey: bigint, type: number, abort = false): Command & { kind: 'out' } => ({
  kind: 'out',
  action: abort ? PrOutAction.PREEMPT_AND_ABORT : PrOutAction.PREEMPT,
  type,
  key,
  saKey,
});

const k = formatReservationKey;

const PREEMPT_IGNORED: Explanation = {
  cause: 'node 1 is still registered after node 2 preempted its key: the target did not remove the preempted registration',
  fix: 'a target bug; Windows validation and fence_scsi rely on PREEMPT removing the victim',
};

const STALE_KEPT: Explanation = {
  cause: 'PREEMPT with the node\'s own key did not remove the stale registration of that key on the other nexus',
  fix: 'fence_scsi relies on this to replace registrations of an old iSCSI session (fence-agents issue 517); report it to the target vendor',
};

function unitAttentionStep(id: string, node: NodeName, title: string, code: { asc: number; ascq: number }, name: string): Step {
  const command: Command = { kind: 'in', action: PrInAction.READ_KEYS };
  return { id, node, title, command, expected: `CHECK CONDITION, UNIT ATTENTION ${name}`, expectsUnitAttention: true, judge: expectUnitAttention(command, code, name) };
}

const typeList = (c: ReportCapabilities): number[] => {
  const m = c.typeMask;
  if (!c.tmv || m === null) return [];
  const pairs: [boolean, number][] = [
    [m.wrEx, PrType.WRITE_EXCLUSIVE],
    [m.exAc, PrType.EXCLUSIVE_ACCESS],
    [m.wrExRo, PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY],
    [m.exAcRo, PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY],
    [m.wrExAr, PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS],
    [m.exAcAr, PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS],
  ];
  return pairs.filter(([set]) => set).map(([, type]) => type);
};

/** The REPORT CAPABILITIES judge; records the supported types in `observations`. */
export function judgeCapabilities(reply: Reply, observations: Observations): Judgement {
  const command: Command = { kind: 'in', action: PrInAction.REPORT_CAPABILITIES };
  const base = expectGood(command)(reply);
  if (base.verdict !== 'pass') return base;
  let c: ReportCapabilities;
  try {
    c = decodeReportCapabilities(reply.data);
  } catch {
    return { verdict: 'fail', observed: `GOOD, ${reply.data.length} bytes`, explanation: { cause: 'REPORT CAPABILITIES data is too short to decode', fix: 'a target bug' } };
  }
  const types = typeList(c);
  observations.supportedTypes = types;
  const b = (v: boolean): number => (v ? 1 : 0);
  const observed =
    `GOOD, CRH ${b(c.crh)} SIP_C ${b(c.sipC)} ATP_C ${b(c.atpC)} PTPL_C ${b(c.ptplC)} TMV ${b(c.tmv)} ALLOW ${c.allowCommands} PTPL_A ${b(c.ptplA)}, ` +
    `types: ${types.length === 0 ? 'none listed' : types.map(prTypeAbbreviation).join(' ')}`;
  if (c.length !== 8) {
    return { verdict: 'fail', observed, explanation: { cause: `LENGTH is ${c.length}, not 8: sg_persist and libiscsi treat this as malformed`, fix: 'a target bug' } };
  }
  if (!c.tmv) {
    return { verdict: 'warn', observed, explanation: { cause: 'the type mask is not valid (TMV 0): which reservation types work is unknown', fix: 'the steps below try WE-RO anyway' } };
  }
  if (!types.includes(CLUSTER_TYPE)) {
    return { verdict: 'fail', observed, explanation: { cause: `the device does not support ${WE_RO}, the type fence_scsi and cluster disks reserve with`, fix: 'use a target that supports all six SPC-4 reservation types' } };
  }
  return { verdict: 'pass', observed, explanation: null };
}

function capabilitySteps(c: FlowContext): Step[] {
  const kA = c.keys.A;
  const capabilities: Command = { kind: 'in', action: PrInAction.REPORT_CAPABILITIES };
  const fullStatus: Command = { kind: 'in', action: PrInAction.READ_FULL_STATUS };
  const truncated: Command = { kind: 'in', action: PrInAction.READ_KEYS, allocationLength: 8 };
  return [
    {
      id: 'capabilities.report',
      node: 'A',
      title: 'REPORT CAPABILITIES',
      command: capabilities,
      expected: `GOOD, LENGTH 8, TMV 1, ${WE_RO} in the type mask`,
      judge: (reply) => judgeCapabilities(reply, c.observations),
    },
    {
      id: 'capabilities.read-full-status',
      node: 'A',
      title: 'READ FULL STATUS is supported',
      command: fullStatus,
      expected: 'GOOD',
      judge: (reply) => {
        const j = expectGood(fullStatus)(reply);
        // Neither WSFC nor fence_scsi sends it: a missing READ FULL STATUS is worth knowing, not a failure.
        return j.verdict === 'fail' && reply.status === ScsiStatus.CHECK_CONDITION ? { ...j, verdict: 'warn' } : j;
      },
    },
    outStep('capabilities.register', 'A', `register ${k(kA)} for the truncation check`, register(kA), 'good'),
    {
      id: 'capabilities.truncation',
      node: 'A',
      title: 'READ KEYS with allocation length 8 (header only)',
      command: truncated,
      expected: 'GOOD, 8 bytes, ADDITIONAL LENGTH counts the key that did not fit',
      judge: expectGood(truncated, (data) => {
        if (data.length !== 8) {
          return { verdict: 'fail', observed: `GOOD, ${data.length} bytes`, explanation: { cause: 'the target returned more than the allocation length asked for', fix: 'a target bug; initiators may overrun their buffers' } };
        }
        const r = decodeReadKeys(data);
        const observed = `GOOD, 8 bytes, ADDITIONAL LENGTH ${r.additionalLength}`;
        if (r.additionalLength >= 8) return { verdict: 'pass', observed, explanation: null };
        return { verdict: 'fail', observed, explanation: { cause: 'ADDITIONAL LENGTH describes only what was returned, so initiators cannot learn how much to ask for', fix: 'a target bug (SPC-4 6.13.1)' } };
      }),
    },
    outStep('capabilities.unregister', 'A', 'unregister (REGISTER AND IGNORE EXISTING KEY, SARK 0)', unregister, 'good'),
  ];
}

function nexusSteps(c: FlowContext): Step[] {
  const { A: kA, B: kB } = c.keys;
  return [
    outStep('nexus.register-a', 'A', `registers ${k(kA)}`, register(kA), 'good'),
    readKeysStep('nexus.seen-from-b', 'B', 'sees node 1\'s key (same LUN)', { present: [kA], whenWrong: NOT_SAME_LUN }),
    outStep('nexus.register-b', 'B', `registers ${k(kB)}`, register(kB), 'good'),
    readKeysStep('nexus.both-keys', 'A', 'both keys listed (two I_T nexuses)', {
      present: [kA, kB],
      whenWrong: (keys) => (keys.includes(kB) && !keys.includes(kA) ? SAME_NEXUS : NOT_SAME_LUN),
    }),
    outStep('nexus.unregister-a', 'A', 'unregisters', unregister, 'good'),
    outStep('nexus.unregister-b', 'B', 'unregisters', unregister, 'good'),
  ];
}

function wsfcSteps(c: FlowContext): Step[] {
  const { A: kA, B: kB } = c.keys;
  const T = CLUSTER_TYPE;
  const head: Step[] = [
    outStep('wsfc.register-a', 'A', `CprepDiskPRRegister ${k(kA)} (REGISTER AND IGNORE EXISTING KEY)`, register(kA), 'good'),
    readKeysStep('wsfc.find-key-a', 'A', 'CprepDiskFindKey (READ KEYS)', { present: [kA] }),
    outStep('wsfc.reserve-a', 'A', `CprepDiskPRReserve ${WE_RO}`, reserve(kA, T), 'good'),
    readReservationStep('wsfc.is-pr-present-a', 'A', 'CprepDiskIsPRPresent (READ RESERVATION)', { held: { key: kA, type: T }, whenWrong: RESERVATION_NOT_REPORTED }),
  ];
  if (!c.twoNodes) {
    const tail: Step[] = [
      outStep('wsfc.release-a', 'A', `CprepDiskPRRelease ${WE_RO}`, release(kA, T), 'good'),
      readReservationStep('wsfc.released-a', 'A', 'no reservation after release', { held: null }),
    ];
    if (c.foreign) tail.push(outStep('wsfc.unregister-a', 'A', 'CprepDiskPRUnRegister (SARK 0)', unregister, 'good'));
    else tail.push(outStep('wsfc.clear-a', 'A', 'CprepDiskPRClear', { kind: 'out', action: PrOutAction.CLEAR, key: kA }, 'good'));
    tail.push(readKeysStep('wsfc.gone-a', 'A', 'its key is gone', { absent: [kA] }));
    return [...head, ...tail];
  }
  const steps: Step[] = [
    ...head,
    outStep('wsfc.reserve-b-unregistered', 'B', 'unregistered: RESERVE must fail', reserve(kB, T), { conflict: NOT_SHARED }),
    outStep('wsfc.preempt-b-unregistered', 'B', 'unregistered: PREEMPT must fail', preempt(kB, kA, T), { conflict: NOT_SHARED }),
    outStep('wsfc.register-b', 'B', `CprepDiskPRRegister ${k(kB)}`, register(kB), 'good'),
    readKeysStep('wsfc.find-keys-b', 'B', 'both keys listed', {
      present: [kA, kB],
      whenWrong: (keys) => (keys.includes(kB) && !keys.includes(kA) ? SAME_NEXUS : NOT_SAME_LUN),
    }),
    outStep('wsfc.reserve-b-registered', 'B', 'registered, not holder: RESERVE must fail', reserve(kB, T), { conflict: NOT_SHARED }),
    outStep('wsfc.preempt-b', 'B', `CprepDiskPRPreempt node 1's key (${WE_RO})`, preempt(kB, kA, T), 'good'),
    readReservationStep('wsfc.is-pr-present-b', 'B', 'it holds the reservation', { held: { key: kB, type: T }, whenWrong: RESERVATION_NOT_REPORTED }),
    readKeysStep('wsfc.preempted-keys', 'B', 'node 1\'s key is gone', { present: [kB], absent: [kA], whenWrong: PREEMPT_IGNORED }),
    unitAttentionStep('wsfc.ua-a', 'A', 'learns it was preempted', Sense.REGISTRATIONS_PREEMPTED, '2a/05 (registrations preempted)'),
    outStep('wsfc.reserve-a-preempted', 'A', 'preempted: RESERVE must fail', reserve(kA, T), { conflict: PREEMPT_IGNORED }),
    outStep('wsfc.release-b', 'B', `CprepDiskPRRelease ${WE_RO}`, release(kB, T), 'good'),
    readReservationStep('wsfc.released-b', 'B', 'no reservation after release', { held: null }),
    outStep('wsfc.unregister-b', 'B', 'CprepDiskPRUnRegister (SARK 0)', unregister, 'good'),
    readKeysStep('wsfc.gone', 'A', 'no validation key is left', { absent: [kA, kB] }),
  ];
  if (c.foreign) return steps;
  return [
    ...steps,
    outStep('wsfc.clear-register-a', 'A', `registers ${k(kA)} again`, register(kA), 'good'),
    outStep('wsfc.clear-register-b', 'B', `registers ${k(kB)} again`, register(kB), 'good'),
    outStep('wsfc.clear-a', 'A', 'CprepDiskPRClear', { kind: 'out', action: PrOutAction.CLEAR, key: kA }, 'good'),
    unitAttentionStep('wsfc.ua-b', 'B', 'learns of the CLEAR', Sense.RESERVATIONS_PREEMPTED, '2a/03 (reservations preempted)'),
    readKeysStep('wsfc.cleared', 'B', 'CLEAR removed every key', { absent: [kA, kB] }),
  ];
}

function wsfcNotes(c: FlowContext): string[] {
  const notes = [`Reservation type ${WE_RO}: Microsoft does not publish the type the validator reserves with.`];
  if (!c.twoNodes) notes.push('Needs a second device (nexus): node 2\'s must-fail attempts, preempting node 1, cross-nexus conflicts, unit attentions.');
  if (c.foreign) notes.push('--force with foreign registrations: CprepDiskPRClear is not sent, it would remove them.');
  return notes;
}

function fenceSteps(c: FlowContext): Step[] {
  const { A: kA, B: kB } = c.keys;
  const T = CLUSTER_TYPE;
  const unfenceA: Step[] = [
    readKeysStep('fence.on-a-keys', 'A', 'unfence: READ KEYS', { absent: [kA] }),
    outStep('fence.on-a-register', 'A', `unfence: REGISTER AND IGNORE EXISTING KEY ${k(kA)}`, register(kA), 'good'),
  ];
  if (c.twoNodes) {
    unfenceA.push(outStep('fence.stale-b', 'B', `a stale nexus of node 1 (new iSCSI session): register ${k(kA)} via node 2's device`, register(kA), 'good'));
  }
  unfenceA.push(
    readKeysStep('fence.on-a-present', 'A', 'its key is listed, so fence_scsi preempts with it', { present: [kA] }),
    outStep('fence.on-a-preempt-own', 'A', `unfence: PREEMPT with its own key (${WE_RO})`, preempt(kA, kA, T), 'good'),
    outStep('fence.on-a-reregister', 'A', 'unfence: register again', register(kA), 'good'),
    readKeysStep('fence.on-a-once', 'A', 'its key is registered exactly once', { once: [kA], whenWrong: STALE_KEPT }),
    readReservationStep('fence.on-a-no-reservation', 'A', 'unfence: READ RESERVATION (none yet)', { held: null }),
    outStep('fence.on-a-reserve', 'A', `unfence: RESERVE ${WE_RO}`, reserve(kA, T), 'good'),
    readReservationStep('fence.on-a-holder', 'A', 'it holds the reservation', { held: { key: kA, type: T }, whenWrong: RESERVATION_NOT_REPORTED }),
  );
  if (!c.twoNodes) {
    return [
      ...unfenceA,
      outStep('fence.release-a', 'A', `releases (${WE_RO})`, release(kA, T), 'good'),
      outStep('fence.unregister-a', 'A', 'unregisters', unregister, 'good'),
    ];
  }
  return [
    ...unfenceA,
    outStep('fence.on-b-register', 'B', `unfence: REGISTER AND IGNORE EXISTING KEY ${k(kB)}`, register(kB), 'good'),
    readKeysStep('fence.on-b-keys', 'B', 'unfence: both keys listed', { present: [kA, kB] }),
    readReservationStep('fence.on-b-reservation', 'B', 'unfence: reservation exists, so it does not reserve', { held: { key: kA, type: T } }),
    outStep('fence.off-register-own', 'A', 'fence node 2: register its own key first', register(kA), 'good'),
    outStep('fence.off-preempt-abort', 'A', `fence node 2: PREEMPT AND ABORT ${k(kB)} (${WE_RO})`, preempt(kA, kB, T, true), 'good'),
    readKeysStep('fence.off-verify-keys', 'A', 'fence: node 2\'s key is gone', { present: [kA], absent: [kB], whenWrong: PREEMPT_IGNORED }),
    readReservationStep('fence.off-verify-reservation', 'A', 'fence: the reservation still exists', { held: { key: kA, type: T } }),
    unitAttentionStep('fence.watchdog-ua', 'B', 'fence_scsi_check: unit attention first', Sense.REGISTRATIONS_PREEMPTED, '2a/05 (registrations preempted)'),
    readKeysStep('fence.watchdog', 'B', 'fence_scsi_check: its key is missing (the watchdog reboots node 2)', { absent: [kB] }),
    outStep('fence.release-a', 'A', `releases (${WE_RO})`, release(kA, T), 'good'),
    outStep('fence.unregister-a', 'A', 'unregisters', unregister, 'good'),
  ];
}

function fenceNotes(c: FlowContext): string[] {
  const notes = ['fence_scsi sends TEST UNIT READY (sg_turs) before each command to clear unit attentions; the helper does not forward it (QEMU answers it), so here every step retries once past a unit attention instead.'];
  if (!c.twoNodes) notes.push('Needs a second device (nexus): a stale registration on another nexus, fencing (PREEMPT AND ABORT of node 2), the watchdog\'s view.');
  return notes;
}

function typeSteps(c: FlowContext): Step[] | { skip: string } {
  const types = c.observations.supportedTypes;
  if (types === null || types.length === 0) return { skip: 'REPORT CAPABILITIES listed no reservation types' };
  const { A: kA, B: kB } = c.keys;
  return types.flatMap((type): Step[] => {
    const t = prTypeAbbreviation(type);
    const allRegistrants = isAllRegistrantsType(type);
    const steps: Step[] = [
      outStep(`types.${t}.register-a`, 'A', `${t}: registers`, register(kA), 'good'),
      outStep(`types.${t}.reserve-a`, 'A', `${t}: reserves`, reserve(kA, type), 'good'),
    ];
    if (c.twoNodes) {
      steps.push(
        outStep(`types.${t}.register-b`, 'B', `${t}: registers`, register(kB), 'good'),
        readReservationStep(`types.${t}.seen-b`, 'B', `${t}: sees the reservation${allRegistrants ? ' (key 0: every registrant holds it)' : ''}`, {
          held: { key: allRegistrants ? 0n : kA, type },
          whenWrong: RESERVATION_NOT_REPORTED,
        }),
        allRegistrants
          ? outStep(`types.${t}.reserve-b`, 'B', `${t}: a holder too, RESERVE succeeds`, reserve(kB, type), 'good')
          : outStep(`types.${t}.reserve-b`, 'B', `${t}: not the holder, RESERVE must fail`, reserve(kB, type), { conflict: NOT_SHARED }),
      );
    } else {
      steps.push(readReservationStep(`types.${t}.seen-a`, 'A', `${t}: READ RESERVATION`, { held: { key: allRegistrants ? 0n : kA, type } }));
    }
    steps.push(
      outStep(`types.${t}.release-a`, 'A', `${t}: releases`, release(kA, type), 'good'),
      readReservationStep(`types.${t}.released`, c.twoNodes ? 'B' : 'A', `${t}: no reservation left`, { held: null }),
      outStep(`types.${t}.unregister-a`, 'A', `${t}: unregisters`, unregister, 'good'),
    );
    if (c.twoNodes) steps.push(outStep(`types.${t}.unregister-b`, 'B', `${t}: unregisters`, unregister, 'good'));
    return steps;
  });
}

export const FLOWS: Readonly<Record<'capabilities' | 'nexus' | 'wsfc' | 'fence_scsi' | 'types', Flow>> = {
  capabilities: { id: 'capabilities', title: 'Capabilities', steps: capabilitySteps, notes: () => [] },
  nexus: {
    id: 'nexus',
    title: 'Two nexuses, one LUN',
    steps: (c) => (c.twoNodes ? nexusSteps(c) : { skip: 'one device given; pass --device twice to check two nexuses' }),
    notes: () => [],
  },
  wsfc: { id: 'wsfc', title: 'Windows Server Failover Cluster validation (MS-CSVP primitives)', steps: wsfcSteps, notes: wsfcNotes },
  fence_scsi: { id: 'fence_scsi', title: 'Pacemaker fence_scsi', steps: fenceSteps, notes: fenceNotes },
  types: {
    id: 'types',
    title: 'Reservation holders of each type',
    steps: typeSteps,
    notes: (c) => (c.twoNodes ? [] : ['Needs a second device (nexus): whether another registrant is a holder.']),
  },
};

/** The flows a profile runs, in order. */
export function flowsFor(profile: Profile): Flow[] {
  const wanted = profile === 'all' ? ['wsfc', 'fence_scsi', 'types'] : [profile];
  return [FLOWS.capabilities, FLOWS.nexus, ...wanted.map((id) => FLOWS[id as keyof typeof FLOWS])];
}

/**
 * Two distinct non-zero keys, neither registered on the LUN already: KB2488012
 * describes validation failing spuriously when nodes' random keys collide.
 */
export function chooseKeys(taken: readonly bigint[], random: () => bigint): Keys {
  const pick = (avoid: readonly bigint[]): bigint => {
    for (let i = 0; i < 1000; i++) {
      const key = random();
      if (key !== 0n && !avoid.includes(key)) return key;
    }
    throw new Error('the random source keeps producing unusable keys');
  };
  const A = pick(taken);
  return { A, B: pick([...taken, A]) };
}

/** The cleanup every node gets: unregister (which also releases a reservation it holds). */
export function cleanupStep(node: NodeName): Step {
  return outStep(`cleanup.unregister-${node.toLowerCase()}`, node, 'unregister (REGISTER AND IGNORE EXISTING KEY, SARK 0)', unregister, 'good');
}

/** The final check: none of the run's keys is left on the LUN. */
export function leftoverStep(keys: Keys, twoNodes: boolean): Step {
  return readKeysStep('cleanup.verify', 'A', 'no validation key is left on the LUN', {
    absent: twoNodes ? [keys.A, keys.B] : [keys.A],
    whenWrong: { cause: 'unregistering did not remove the validation keys', fix: `remove them by hand: sg_persist --out --register-ignore --param-sark=0 DEVICE on each node` },
  });
}

/** The preflight READ KEYS: the keys it finds are foreign (the run has not registered any yet). */
export function preflightStep(node: NodeName): Step {
  const command: Command = { kind: 'in', action: PrInAction.READ_KEYS };
  return {
    id: `preflight.read-keys-${node.toLowerCase()}`,
    node,
    title: 'READ KEYS before touching the LUN',
    command,
    expected: 'GOOD',
    judge: expectGood(command, (data) => {
      try {
        const r = decodeReadKeys(data);
        return { verdict: 'pass', observed: `GOOD, ${r.keys.length === 0 ? 'no registrations' : `registered: ${r.keys.map(k).join(', ')}`}`, explanation: null };
      } catch (err) {
        return { verdict: 'fail', observed: `GOOD, ${(err as Error).message}`, explanation: { cause: 'the device returned less parameter data than the header needs', fix: 'a target bug' } };
      }
    }),
  };
}

/** Keys a preflight READ KEYS reply lists; empty when it could not be decoded. */
export function keysOf(reply: Reply): bigint[] {
  if (reply.status !== ScsiStatus.GOOD) return [];
  try {
    return decodeReadKeys(reply.data).keys;
  } catch {
    return [];
  }
}
