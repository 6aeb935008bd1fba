// The pure multipath planner (src/backend/multipath-plan.ts): classification of
// per-path SG_IO outcomes, the PR OUT plan per service action, and how the
// answers of several paths become one reply. Expected sense bytes are written
// out by hand (general fixed form 70 00 KEY 00 00 00 00 0a 00 00 00 00 ASC ASCQ).
import { describe, expect, it } from 'vitest';
import {
  carriesKeyProbe,
  carryVerdict,
  checksKeyFirst,
  classifyOutcome,
  decideFanOut,
  decideRelease,
  decodeOutCommand,
  exhaustedReply,
  heldWithKey,
  keyStillRegistered,
  isPathSense,
  parsePtplActive,
  parseReadKeys,
  parseReadReservation,
  planOut,
  preemptDone,
  preemptsAnother,
  prInCommand,
  prOutCommand,
  repairCommand,
  reserveHeldByUnreachablePath,
  singleStep,
  unreachable,
  type FanOutMode,
  type OutCommand,
  type PathResult,
} from '../../src/backend/multipath-plan.js';
import type { SgioOutcome } from '../../src/backend/sgio-result.js';
import type { CommandResult } from '../../src/protocol/response.js';
import { basicParams, prOutCdb, registerAndMoveParams, WE_RO } from '../fixtures/scsi-bytes.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const sense96 = (s = ''): Buffer => {
  const out = Buffer.alloc(96);
  hex(s).copy(out);
  return out;
};
const fixed = (key: number, asc: number, ascq: number): Buffer => {
  const s = Buffer.alloc(96);
  s[0] = 0x70;
  s[2] = key;
  s[7] = 0x0a;
  s[12] = asc;
  s[13] = ascq;
  return s;
};

const SENSE = {
  PARAMETER_LIST_LENGTH: sense96('70 00 05 00 00 00 00 0a 00 00 00 00 1a 00 00 00 00 00'),
  LUN_COMM_FAILURE: sense96('70 00 0b 00 00 00 00 0a 00 00 00 00 08 00 00 00 00 00'),
  LUN_NOT_RESPONDING: sense96('70 00 0b 00 00 00 00 0a 00 00 00 00 05 00 00 00 00 00'),
  I_T_NEXUS_LOSS: sense96('70 00 0b 00 00 00 00 0a 00 00 00 00 29 07 00 00 00 00'),
  IO_PROCESS_TERMINATED: sense96('70 00 0b 00 00 00 00 0a 00 00 00 00 00 06 00 00 00 00'),
  INVALID_RELEASE: sense96('70 00 05 00 00 00 00 0a 00 00 00 00 26 04 00 00 00 00'),
  INVALID_PARAM: sense96('70 00 05 00 00 00 00 0a 00 00 00 00 26 00 00 00 00 00'),
  UA_PREEMPTED: sense96('70 00 06 00 00 00 00 0a 00 00 00 00 2a 05 00 00 00 00'),
  UA_RESET: sense96('70 00 06 00 00 00 00 0a 00 00 00 00 29 00 00 00 00 00'),
};

const GOOD = 0x00;
const CHECK = 0x02;
const BUSY = 0x08;
const CONFLICT = 0x18;

const outcome = (o: Partial<SgioOutcome>): SgioOutcome => ({
  errno: 0,
  status: 0,
  hostStatus: 0,
  driverStatus: 0,
  resid: 0,
  sense: Buffer.alloc(96),
  ...o,
});

// Per-path results, as the executor hands them to the planner.
const good = (path: string, data: Buffer | null = null): PathResult => ({ kind: 'answer', path, status: GOOD, sense: Buffer.alloc(96), data });
const conflict = (path: string): PathResult => ({ kind: 'answer', path, status: CONFLICT, sense: Buffer.alloc(96), data: null });
const check = (path: string, sense: Buffer): PathResult => ({ kind: 'answer', path, status: CHECK, sense, data: null });
const failed = (path: string, reply: CommandResult = { status: CHECK, sense: SENSE.LUN_NOT_RESPONDING }): PathResult => ({
  kind: 'failure',
  path,
  reason: 'host_status 0x01',
  reply,
  mayHaveExecuted: true,
});
const gone = (path: string): PathResult => unreachable(path, 'not used: device state offline');

const view = (r: CommandResult) => ({ status: r.status, sense: Buffer.from(r.sense ?? Buffer.alloc(96)).toString('hex') });
const expectReply = (r: CommandResult, status: number, sense: Buffer = Buffer.alloc(96)) =>
  expect(view(r)).toEqual({ status, sense: sense.toString('hex') });

function command(over: Partial<OutCommand> = {}): OutCommand {
  return { action: 0, scope: 0, type: 0, key: 0n, saKey: 0n, specIpt: false, allTgPt: false, aptpl: false, unreg: false, ...over };
}

// ---------------------------------------------------------------------------

describe('classifyOutcome: device answer or path failure', () => {
  // [name, outcome, expected kind, reply status, reply sense]
  const rows: Array<[string, Partial<SgioOutcome>, 'answer' | 'failure', number, Buffer]> = [
    ['GOOD', {}, 'answer', GOOD, Buffer.alloc(96)],
    ['RESERVATION CONFLICT', { status: CONFLICT }, 'answer', CONFLICT, Buffer.alloc(96)],
    ['BUSY from the device', { status: BUSY }, 'answer', BUSY, Buffer.alloc(96)],
    ['CHECK CONDITION, device sense (05/26/00)', { status: CHECK, sense: SENSE.INVALID_PARAM }, 'answer', CHECK, SENSE.INVALID_PARAM],
    ['UNIT ATTENTION is an answer (not performed, but the news matters)', { status: CHECK, sense: SENSE.UA_PREEMPTED }, 'answer', CHECK, SENSE.UA_PREEMPTED],
    ['host NEXUS_FAILURE = reservation conflict', { hostStatus: 0x11 }, 'answer', CONFLICT, Buffer.alloc(96)],
    ['host TARGET_FAILURE is the device', { hostStatus: 0x10 }, 'answer', CHECK, fixed(0x04, 0x44, 0)],
    ['errno ENODEV (device went away under an open fd)', { errno: 19 }, 'failure', CHECK, SENSE.IO_PROCESS_TERMINATED],
    ['host NO_CONNECT', { hostStatus: 0x01 }, 'failure', CHECK, SENSE.LUN_NOT_RESPONDING],
    ['host TRANSPORT_DISRUPTED (tcm_loop transport offline)', { hostStatus: 0x0e }, 'failure', CHECK, SENSE.I_T_NEXUS_LOSS],
    ['host TIME_OUT', { hostStatus: 0x03 }, 'failure', CHECK, fixed(0x0b, 0x2e, 0x02)],
    ['host DID_ERROR (unknown to 2.4b)', { hostStatus: 0x07 }, 'failure', CHECK, SENSE.IO_PROCESS_TERMINATED],
    ['host TRANSPORT_FAILFAST', { hostStatus: 0x0f }, 'failure', CHECK, SENSE.IO_PROCESS_TERMINATED],
    ['driver timeout bits', { driverStatus: 0x06 }, 'failure', BUSY, Buffer.alloc(96)],
    ['TASK ABORTED status', { status: 0x40 }, 'failure', 0x40, Buffer.alloc(96)],
    ['ALUA transitioning 02/04/0A', { status: CHECK, sense: fixed(2, 4, 0x0a) }, 'failure', CHECK, fixed(2, 4, 0x0a)],
    ['ALUA standby 02/04/0B', { status: CHECK, sense: fixed(2, 4, 0x0b) }, 'failure', CHECK, fixed(2, 4, 0x0b)],
    ['ALUA unavailable 02/04/0C', { status: CHECK, sense: fixed(2, 4, 0x0c) }, 'failure', CHECK, fixed(2, 4, 0x0c)],
    ['port offline 02/04/12', { status: CHECK, sense: fixed(2, 4, 0x12) }, 'failure', CHECK, fixed(2, 4, 0x12)],
    ['LOGICAL UNIT NOT SUPPORTED 05/25/00', { status: CHECK, sense: fixed(5, 0x25, 0) }, 'failure', CHECK, fixed(5, 0x25, 0)],
    ['ABORTED COMMAND from the target', { status: CHECK, sense: fixed(0x0b, 0x47, 0) }, 'failure', CHECK, fixed(0x0b, 0x47, 0)],
    ['NOT READY 02/04/00 is the device (not a path state)', { status: CHECK, sense: fixed(2, 4, 0) }, 'answer', CHECK, fixed(2, 4, 0)],
    ['LIO NOT READY 02/08/00 is the device', { status: CHECK, sense: fixed(2, 8, 0) }, 'answer', CHECK, fixed(2, 8, 0)],
  ];
  it.each(rows)('%s', (_name, o, kind, status, sense) => {
    const r = classifyOutcome('sda', outcome(o), 24);
    expect(r.kind).toBe(kind);
    expectReply(r.kind === 'answer' ? r : r.reply, status, sense);
  });

  it('descriptor-format sense is recognised as a path state too', () => {
    const desc = sense96('72 02 04 0a 00 00 00 00');
    expect(isPathSense(desc)).toBe(true);
    expect(classifyOutcome('sda', outcome({ status: CHECK, sense: desc }), 24).kind).toBe('failure');
  });

  it('PR IN data: only dxfer_len - resid bytes, and only with GOOD', () => {
    const data = Buffer.alloc(8192);
    hex('00000003 00000008 00000000000000aa').copy(data);
    const r = classifyOutcome('sda', outcome({ resid: 8192 - 16 }), 8192, data);
    expect(r.kind === 'answer' && r.data?.toString('hex')).toBe('000000030000000800000000000000aa');
    const c = classifyOutcome('sda', outcome({ status: CONFLICT, resid: 0 }), 8192, data);
    expect(c.kind === 'answer' && c.data).toBeNull();
  });

  it('a failure carries whether the command may have reached the device', () => {
    expect((classifyOutcome('sda', outcome({ hostStatus: 0x03 }), 24) as { mayHaveExecuted: boolean }).mayHaveExecuted).toBe(true);
    expect((classifyOutcome('sda', outcome({ status: CHECK, sense: fixed(2, 4, 0x0b) }), 24) as { mayHaveExecuted: boolean }).mayHaveExecuted).toBe(false);
    expect(gone('sdb')).toMatchObject({ kind: 'failure', mayHaveExecuted: false });
    expectReply((gone('sdb') as { reply: CommandResult }).reply, CHECK, SENSE.LUN_COMM_FAILURE);
  });
});

describe('planOut: the plan per service action', () => {
  const rows: Array<[string, number, Buffer, string, string]> = [
    ['REGISTER', 0x00, basicParams({ key: 0n, saKey: 0xaan }), 'fan-out', 'register'],
    ['REGISTER AND IGNORE EXISTING KEY', 0x06, basicParams({ key: 0n, saKey: 0xaan }), 'fan-out', 'register-ignore'],
    ['RELEASE', 0x02, basicParams({ key: 0xaan, saKey: 0n }), 'fan-out', 'release'],
    ['RESERVE', 0x01, basicParams({ key: 0xaan, saKey: 0n }), 'single', 'none'],
    ['CLEAR', 0x03, basicParams({ key: 0xaan, saKey: 0n }), 'single', 'none'],
    ['PREEMPT another key', 0x04, basicParams({ key: 0xaan, saKey: 0xbbn }), 'single', 'none'],
    ['PREEMPT our own key', 0x04, basicParams({ key: 0xaan, saKey: 0xaan }), 'single', 'restore-other-paths'],
    ['PREEMPT with SARK 0 (all-registrants preempt-all)', 0x04, basicParams({ key: 0xaan, saKey: 0n }), 'single', 'restore-other-paths'],
    ['PREEMPT AND ABORT our own key', 0x05, basicParams({ key: 0xaan, saKey: 0xaan }), 'single', 'restore-other-paths'],
    ['REGISTER AND MOVE', 0x07, basicParams({ key: 0xaan, saKey: 0xbbn }), 'single', 'none'],
    ['REPLACE LOST RESERVATION (device decides)', 0x08, basicParams({ key: 0xaan, saKey: 0n }), 'single', 'none'],
    ['reserved service action 0x1f (device decides)', 0x1f, basicParams({ key: 0xaan, saKey: 0n }), 'single', 'none'],
  ];
  it.each(rows)('%s', (_name, action, p, kind, sub) => {
    const plan = planOut(prOutCdb(action, WE_RO, p.length), p);
    expect(plan.kind).toBe(kind);
    if (plan.kind === 'fan-out') expect(plan.mode).toBe(sub);
    if (plan.kind === 'single') expect(plan.after).toBe(sub);
  });

  it('RESERVE checks for our own reservation behind an unreachable path; nothing else does', () => {
    expect(planOut(prOutCdb(1, WE_RO, 24), basicParams({ key: 1n, saKey: 0n }))).toMatchObject({ kind: 'single', checkOwnReservation: true });
    expect(planOut(prOutCdb(3, 0, 24), basicParams({ key: 1n, saKey: 0n }))).toMatchObject({ kind: 'single', checkOwnReservation: false });
  });

  it('REGISTER AND MOVE with UNREG unregisters the other paths too', () => {
    const p = registerAndMoveParams({ key: 0xaan, saKey: 0xbbn, unreg: true, aptpl: true, relativeTargetPort: 0, transportId: Buffer.alloc(24) });
    const plan = planOut(prOutCdb(7, 0, p.length), p);
    expect(plan).toMatchObject({ kind: 'single', after: 'unregister-other-paths', command: { unreg: true, aptpl: true, allTgPt: false } });
  });

  it.each([0, 8, 23])('parameter list of %i bytes: PARAMETER LIST LENGTH ERROR without touching a path (E9)', (n) => {
    const plan = planOut(prOutCdb(0, 0, n), Buffer.alloc(n));
    expect(plan.kind).toBe('reply');
    if (plan.kind === 'reply') expectReply(plan.result, CHECK, SENSE.PARAMETER_LIST_LENGTH);
  });

  it('longer lists (SPEC_I_PT TransportIDs) go to the device verbatim: no 32-TransportID limit', () => {
    const tids = Buffer.alloc(40 * 24); // 40 FC TransportIDs
    const p = basicParams({ saKey: 0xaan, specIPt: true, transportIds: [tids] });
    const plan = planOut(prOutCdb(0, 0, p.length), p);
    expect(plan).toMatchObject({ kind: 'fan-out', mode: 'register', command: { specIpt: true } });
  });

  it('decodes keys, scope/type and flags', () => {
    expect(decodeOutCommand(prOutCdb(4, WE_RO, 24, 1), basicParams({ key: 0x0102030405060708n, saKey: 0xffeeddccbbaa9988n, specIPt: true, allTgPt: true, aptpl: true }))).toEqual({
      action: 4,
      scope: 1,
      type: 5,
      key: 0x0102030405060708n,
      saKey: 0xffeeddccbbaa9988n,
      specIpt: true,
      allTgPt: true,
      aptpl: true,
      unreg: false,
    });
  });
});

describe('one path at a time', () => {
  const rows: Array<[string, PathResult, 'in' | 'out', 'done' | 'next']> = [
    ['PR IN answered', good('sda'), 'in', 'done'],
    ['PR IN conflict is an answer (legacy reservation)', conflict('sda'), 'in', 'done'],
    ['PR IN path failure', failed('sda'), 'in', 'next'],
    ['PR OUT GOOD', good('sda'), 'out', 'done'],
    ['PR OUT RESERVATION CONFLICT: not performed, another nexus of ours may be the holder', conflict('sda'), 'out', 'next'],
    ['PR OUT UNIT ATTENTION: passed on like a single-path LUN', check('sda', SENSE.UA_PREEMPTED), 'out', 'done'],
    ['PR OUT device error', check('sda', SENSE.INVALID_PARAM), 'out', 'done'],
    ['PR OUT path failure', failed('sda'), 'out', 'next'],
  ];
  it.each(rows)('%s', (_n, r, dir, step) => expect(singleStep(r, dir)).toBe(step));

  it('exhausted: a conflict beats failures; SG_IO failures beat skipped paths; nothing = LUN COMMUNICATION FAILURE', () => {
    expectReply(exhaustedReply([failed('sda'), conflict('sdb')]), CONFLICT);
    expectReply(exhaustedReply([failed('sda', { status: CHECK, sense: SENSE.I_T_NEXUS_LOSS }), gone('sdb')]), CHECK, SENSE.I_T_NEXUS_LOSS);
    expectReply(exhaustedReply([gone('sda'), gone('sdb')]), CHECK, SENSE.LUN_COMM_FAILURE);
    expectReply(exhaustedReply([]), CHECK, SENSE.LUN_COMM_FAILURE);
  });
});

describe('decideFanOut', () => {
  const K = 0xaan;
  const K2 = 0xa2n;
  const reg = (key: bigint, saKey: bigint, over: Partial<OutCommand> = {}) => command({ action: 0, key, saKey, ...over });

  // [name, mode, command, results, retriesLeft, expected]
  type Row = [string, FanOutMode, OutCommand, PathResult[], boolean, Record<string, unknown>];
  const rows: Row[] = [
    ['REGISTER: GOOD everywhere', 'register', reg(0n, K), [good('sda'), good('sdb')], true, { kind: 'reply', status: GOOD }],
    ['REGISTER: a path down is not an error (it missed the registration)', 'register', reg(0n, K), [good('sda'), failed('sdb')], true, { kind: 'reply', status: GOOD, repair: undefined }],
    ['REGISTER: conflict everywhere (wrong key) -> CONFLICT, nothing to repair', 'register', reg(0x99n, K), [conflict('sda'), conflict('sdb')], true, { kind: 'reply', status: CONFLICT, repair: undefined }],
    [
      'REGISTER key change: sdb missed the earlier registration -> R&IEK the new key there',
      'register',
      reg(K, K2),
      [good('sda'), conflict('sdb')],
      true,
      { kind: 'reply', status: GOOD, repair: { why: 'missed-registration', paths: ['sdb'], saKey: K2 } },
    ],
    [
      'unregister (SARK 0): sdb was not registered -> unregister there too (no-op)',
      'register',
      reg(K, 0n),
      [conflict('sda'), good('sdb')],
      true,
      { kind: 'reply', status: GOOD, repair: { why: 'missed-registration', paths: ['sda'], saKey: 0n } },
    ],
    [
      'REGISTER RK 0 while some path is registered: the map was registered -> CONFLICT, undo the new registrations',
      'register',
      reg(0n, K2),
      [conflict('sda'), good('sdb')],
      true,
      { kind: 'reply', status: CONFLICT, repair: { why: 'rollback', paths: ['sdb'], saKey: 0n } },
    ],
    ['REGISTER RK 0 SARK 0 (no-op) with a registered path: CONFLICT, nothing to undo', 'register', reg(0n, 0n), [conflict('sda'), good('sdb')], true, { kind: 'reply', status: CONFLICT, repair: undefined }],
    [
      'REGISTER: a real error on one path -> that error, the others back to RK',
      'register',
      reg(K, K2),
      [good('sda'), check('sdb', SENSE.INVALID_PARAM)],
      true,
      { kind: 'reply', status: CHECK, sense: SENSE.INVALID_PARAM, repair: { why: 'rollback', paths: ['sda'], saKey: K } },
    ],
    ['REGISTER: error everywhere -> the error, no repair', 'register', reg(K, K2), [check('sda', SENSE.INVALID_PARAM), conflict('sdb')], true, { kind: 'reply', status: CHECK, sense: SENSE.INVALID_PARAM, repair: undefined }],
    ['UA on one path while the other performed it -> retry that path', 'register', reg(0n, K), [good('sda'), check('sdb', SENSE.UA_PREEMPTED)], true, { kind: 'retry', paths: ['sdb'] }],
    ['UA on every path -> the UA, like a single-path LUN (nothing was performed)', 'register', reg(0n, K), [check('sda', SENSE.UA_RESET), check('sdb', SENSE.UA_PREEMPTED)], true, { kind: 'reply', status: CHECK, sense: SENSE.UA_RESET }],
    [
      'UA left after the retries -> reported, the others rolled back',
      'register',
      reg(0n, K),
      [good('sda'), check('sdb', SENSE.UA_PREEMPTED)],
      false,
      { kind: 'reply', status: CHECK, sense: SENSE.UA_PREEMPTED, repair: { why: 'rollback', paths: ['sda'], saKey: 0n } },
    ],
    ['no path answered -> the failure', 'register', reg(0n, K), [failed('sda', { status: CHECK, sense: SENSE.I_T_NEXUS_LOSS }), gone('sdb')], true, { kind: 'reply', status: CHECK, sense: SENSE.I_T_NEXUS_LOSS }],
    ['no path at all -> LUN COMMUNICATION FAILURE', 'register', reg(0n, K), [gone('sda'), gone('sdb')], true, { kind: 'reply', status: CHECK, sense: SENSE.LUN_COMM_FAILURE }],
    ['R&IEK: GOOD everywhere', 'register-ignore', reg(0n, K, { action: 6 }), [good('sda'), good('sdb')], true, { kind: 'reply', status: GOOD }],
    ['R&IEK: partial -> the error (R&IEK is idempotent: the retry converges)', 'register-ignore', reg(0n, K, { action: 6 }), [good('sda'), check('sdb', SENSE.INVALID_PARAM)], true, { kind: 'reply', status: CHECK, sense: SENSE.INVALID_PARAM, repair: undefined }],
    ['RELEASE: GOOD from every path -> GOOD', 'release', reg(K, 0n, { action: 2, type: 5 }), [good('sda'), good('sdb')], true, { kind: 'reply', status: GOOD }],
    ['RELEASE: a path not reached -> read the reservation back', 'release', reg(K, 0n, { action: 2, type: 5 }), [good('sda'), gone('sdb')], true, { kind: 'verify-release' }],
    ['RELEASE: a conflict -> read the reservation back', 'release', reg(K, 0n, { action: 2, type: 5 }), [good('sda'), conflict('sdb')], true, { kind: 'verify-release' }],
  ];
  it.each(rows)('%s', (_name, mode, cmd, results, retries, want) => {
    const d = decideFanOut(mode, cmd, results, retries);
    expect(d.kind).toBe(want['kind']);
    if (d.kind === 'retry') expect(d.paths).toEqual(want['paths']);
    if (d.kind === 'reply') {
      expectReply(d.result, want['status'] as number, (want['sense'] as Buffer | undefined) ?? Buffer.alloc(96));
      if (want['repair'] === undefined) expect(d.repair).toBeUndefined();
      else expect(d.repair).toMatchObject(want['repair'] as object);
    }
  });

  it('repairs keep the guest\'s ALL_TG_PT and APTPL', () => {
    const d = decideFanOut('register', reg(K, K2, { allTgPt: true, aptpl: true }), [good('sda'), conflict('sdb')], true);
    expect(d).toMatchObject({ kind: 'reply', repair: { allTgPt: true, aptpl: true } });
  });
});

describe('decideRelease (after reading the reservation back)', () => {
  const K = 0xaan;
  const rel = command({ action: 2, key: K, type: 5 });
  const ours = { key: K, scope: 0, type: 5 };
  const theirs = { key: 0xbbn, scope: 0, type: 5 };
  type Row = [string, PathResult[], { key: bigint; scope: number; type: number } | null | undefined, string, number?, Buffer?];
  const rows: Row[] = [
    ['released (gone) after GOOD on one path -> GOOD', [good('sda'), conflict('sdb')], null, 'reply', GOOD],
    ['someone else holds it: our RELEASE was a no-op -> GOOD', [good('sda'), gone('sdb')], theirs, 'reply', GOOD],
    ['not released and no path registered -> CONFLICT', [conflict('sda'), conflict('sdb')], null, 'reply', CONFLICT],
    ['still ours, the holder answered 05/26/04 -> that', [good('sda'), check('sdb', SENSE.INVALID_RELEASE)], ours, 'reply', CHECK, SENSE.INVALID_RELEASE],
    ['still ours, holder reachable and says CONFLICT (LIO type mismatch) -> CONFLICT', [good('sda'), conflict('sdb')], ours, 'reply', CONFLICT],
    ['still ours, the holder is an unreachable path -> take over', [good('sda'), gone('sdb')], ours, 'take-over'],
    ['still ours behind an unreachable path, but another type -> 05/26/04', [good('sda'), gone('sdb')], { ...ours, type: 1 }, 'reply', CHECK, SENSE.INVALID_RELEASE],
    ['reservation unreadable -> the worst answer seen', [good('sda'), failed('sdb', { status: CHECK, sense: SENSE.I_T_NEXUS_LOSS })], undefined, 'reply', CHECK, SENSE.I_T_NEXUS_LOSS],
  ];
  it.each(rows)('%s', (_name, results, reservation, kind, status, sense) => {
    const d = decideRelease(rel, results, reservation);
    expect(d.kind).toBe(kind);
    if (d.kind === 'reply') expectReply(d.result, status!, sense ?? Buffer.alloc(96));
    if (d.kind === 'take-over') expect(d.reservation).toEqual(ours);
  });

  it('all-registrants reservations (key 0) are never "ours" by key', () => {
    expect(heldWithKey({ key: 0n, scope: 0, type: 7 }, 0n)).toBe(false);
    expect(heldWithKey({ key: K, scope: 0, type: 8 }, K)).toBe(false);
    expect(heldWithKey({ key: K, scope: 0, type: 6 }, K)).toBe(true);
    expect(heldWithKey(null, K)).toBe(false);
  });
});

describe('RESERVE held by an unreachable path of ours', () => {
  const res = command({ action: 1, key: 0xaan, type: 5 });
  it.each([
    ['our key, same type', { key: 0xaan, scope: 0, type: 5 }, true],
    ['our key, other type', { key: 0xaan, scope: 0, type: 6 }, false],
    ['other key', { key: 0xbbn, scope: 0, type: 5 }, false],
    ['no reservation', null, false],
  ] as const)('%s', (_n, reservation, want) => expect(reserveHeldByUnreachablePath(res, reservation)).toBe(want));
});

describe('PR IN data parsers and command builders', () => {
  it('READ RESERVATION', () => {
    expect(parseReadReservation(hex('00000002 00000000'))).toBeNull();
    expect(parseReadReservation(hex('00000002 00000010 00000000000000aa 00000000 00 05 0000'))).toEqual({ key: 0xaan, scope: 0, type: 5 });
    expect(() => parseReadReservation(hex('0000'))).toThrow(RangeError);
    expect(() => parseReadReservation(hex('00000002 00000010 00000000000000aa'))).toThrow(RangeError);
  });

  it('READ KEYS (only the keys that fit)', () => {
    expect(parseReadKeys(hex('00000002 00000010 00000000000000aa 00000000000000bb'))).toEqual([0xaan, 0xbbn]);
    expect(parseReadKeys(hex('00000002 00000010 00000000000000aa 0000'))).toEqual([0xaan]);
    expect(parseReadKeys(hex('00000000 00000000'))).toEqual([]);
  });

  it('REPORT CAPABILITIES PTPL_A', () => {
    expect(parsePtplActive(hex('0008 1d 91 ea01 0000'))).toBe(true);
    expect(parsePtplActive(hex('0008 1d 90 ea01 0000'))).toBe(false);
  });

  it('builds 10-byte CDBs with 24-byte parameter lists', () => {
    expect(prInCommand(1).toString('hex')).toBe('5e010000000000200000');
    const { cdb, params: p } = prOutCommand(4, 0, 5, 0xaan, 0xbbn);
    expect(cdb.toString('hex')).toBe('5f040500000000001800');
    expect(p.toString('hex')).toBe('00000000000000aa00000000000000bb' + '00000000' + '00000000');
    const r = repairCommand({ saKey: 0xccn, allTgPt: true, aptpl: true });
    expect(r.cdb.toString('hex')).toBe('5f060000000000001800');
    expect(r.params.toString('hex')).toBe('0000000000000000' + '00000000000000cc' + '00000000' + '05000000');
  });
});

describe('keeping every path on the map key', () => {
  it('checks the key first before RESERVE, PREEMPT, PREEMPT AND ABORT and RELEASE only', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8].filter(checksKeyFirst)).toEqual([1, 2, 4, 5]);
  });

  it('the carries-the-key question is REGISTER with RK = SARK, keeping APTPL and ALL_TG_PT', () => {
    const { cdb, params: p } = carriesKeyProbe(0xaan, { allTgPt: true, aptpl: true });
    expect(cdb.toString('hex')).toBe('5f000000000000001800');
    expect(p.toString('hex')).toBe('00000000000000aa' + '00000000000000aa' + '00000000' + '05000000');
  });

  it('sorts the answers: GOOD carries it, RESERVATION CONFLICT does not, anything else is unknown', () => {
    const answer = (path: string, status: number): PathResult => ({ kind: 'answer', path, status, sense: sense96(), data: null });
    const v = carryVerdict([answer('sda', GOOD), answer('sdb', CONFLICT), answer('sdc', CHECK), unreachable('sdd', 'gone')]);
    expect(v).toEqual({ carrying: ['sda'], stale: ['sdb'], unknown: ['sdc', 'sdd'] });
  });

  it('the key is still registered, is gone, or cannot be told (data short or cut off)', () => {
    expect(keyStillRegistered(hex('00000002 00000010 00000000000000aa 00000000000000bb'), 0xbbn)).toBe(true);
    expect(keyStillRegistered(hex('00000002 00000008 00000000000000aa'), 0xbbn)).toBe(false);
    expect(keyStillRegistered(hex('00000002 00000010 00000000000000aa'), 0xbbn)).toBeNull();
    expect(keyStillRegistered(hex('0000'), 0xbbn)).toBeNull();
  });

  it('a PREEMPT of another key counts as performed only when that key is gone and the reservation is ours as asked', () => {
    const fence = decodeOutCommand(prOutCdb(5, WE_RO, 24), basicParams({ key: 0xaan, saKey: 0xbbn }));
    expect(preemptsAnother(fence)).toBe(true);
    expect(preemptsAnother(decodeOutCommand(prOutCdb(4, WE_RO, 24), basicParams({ key: 0xaan, saKey: 0xaan })))).toBe(false);
    expect(preemptsAnother(decodeOutCommand(prOutCdb(1, WE_RO, 24), basicParams({ key: 0xaan, saKey: 0xbbn })))).toBe(false);
    const ours = { key: 0xaan, scope: 0, type: WE_RO };
    expect(preemptDone(fence, [0xaan, 0xaan], ours)).toBe(true);
    expect(preemptDone(fence, [0xaan, 0xbbn], ours)).toBe(false); // the victim is still registered
    expect(preemptDone(fence, [0xaan], { ...ours, key: 0xccn })).toBe(false); // someone else holds it
    expect(preemptDone(fence, [0xaan], { ...ours, type: 6 })).toBe(false);
    expect(preemptDone(fence, [0xaan], null)).toBe(false);
  });
});
