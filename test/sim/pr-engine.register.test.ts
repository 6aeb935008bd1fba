import { describe, expect, it } from 'vitest';
import { PrEngine } from '../../src/sim/pr-engine.js';
import {
  ALL_TYPES,
  basicParams,
  EA,
  expectCheck,
  expectConflict,
  expectGood,
  fc,
  fcTid,
  IN,
  Initiator,
  iscsi,
  iscsiTid,
  isAllRegistrants,
  isRegistrantsOnly,
  lun,
  nexus,
  NODE_A,
  NODE_B,
  NODE_C,
  prOutCdb,
  SA,
  sas,
  sasTid,
  TYPE_NAMES,
  WE,
  WE_RO,
} from './helpers.js';

const KA = 0x1122334455667788n;
const KB = 0xb0b0b0b0b0b0b0b0n;
const KC = 0xc3n;

const ILLEGAL = 0x5;
const expectInvalidParam = (r: ReturnType<Initiator['in']>): void => expectCheck(r, ILLEGAL, 0x26, 0x00);
const expectLengthError = (r: ReturnType<Initiator['in']>): void => expectCheck(r, ILLEGAL, 0x1a, 0x00);

describe('REGISTER and REGISTER AND IGNORE EXISTING KEY (§4.1 table)', () => {
  type Row = [string, boolean, (a: Initiator) => ReturnType<Initiator['in']>, 'conflict' | 'good' | 'invalid', bigint[]];
  const rows: Row[] = [
    ['unregistered, REGISTER RK != 0', false, (a) => a.register(KA, KB), 'conflict', []],
    ['unregistered, REGISTER RK 0 SARK 0', false, (a) => a.register(0n, 0n), 'good', []],
    ['unregistered, REGISTER RK 0 SARK != 0', false, (a) => a.register(0n, KB), 'good', [KB]],
    ['unregistered, R&IEK any RK, SARK != 0', false, (a) => a.registerIgnore(KB, { key: 0xdeadn }), 'good', [KB]],
    ['unregistered, R&IEK SARK 0', false, (a) => a.registerIgnore(0n), 'good', []],
    ['registered, REGISTER RK != key', true, (a) => a.register(KC, KB), 'conflict', [KA]],
    ['registered, REGISTER RK 0 (libiscsi ProutRegister.Simple)', true, (a) => a.register(0n, KA + 1n), 'conflict', [KA]],
    ['registered, REGISTER RK = key, SARK != 0', true, (a) => a.register(KA, KB), 'good', [KB]],
    ['registered, R&IEK wrong RK, SARK != 0', true, (a) => a.registerIgnore(KB, { key: KC }), 'good', [KB]],
    ['registered, REGISTER RK = key, SARK 0', true, (a) => a.register(KA, 0n), 'good', []],
    ['registered, R&IEK SARK 0', true, (a) => a.registerIgnore(0n), 'good', []],
    [
      'registered, REGISTER with SPEC_I_PT',
      true,
      (a) => a.register(KA, KB, { specIPt: true, transportIds: [iscsiTid(NODE_B)] }),
      'invalid',
      [KA],
    ],
  ];

  it.each(rows)('%s', (_name, registered, command, outcome, keysAfter) => {
    const { a } = lun();
    if (registered) expectGood(a.registerIgnore(KA));
    const before = a.generation();
    const r = command(a);
    if (outcome === 'good') expectGood(r);
    else if (outcome === 'conflict') expectConflict(r);
    else expectInvalidParam(r);
    const after = a.readKeys();
    expect(after.keys).toEqual(keysAfter);
    // §4.8: +1 for every successful REGISTER-family command, none for failures.
    expect(after.generation).toBe(outcome === 'good' ? before + 1 : before);
  });

  it('replacing the holder key keeps the reservation, which then shows the new key', () => {
    const { a, b } = lun();
    expectGood(a.registerIgnore(KA));
    expectGood(b.registerIgnore(KB));
    expectGood(a.reserve(KA, WE));
    expectGood(a.register(KA, KC));
    expect(b.readReservation().reservation).toEqual({ key: KC, scope: 0, type: WE });
    // Registration order is kept by a key change (§5.2).
    expect(b.readKeys().keys).toEqual([KC, KB]);
  });

  it('lists a key once per registered I_T nexus', () => {
    const { a, b, c } = lun();
    for (const i of [a, b, c]) expectGood(i.registerIgnore(KA));
    expect(a.readKeys()).toEqual({ generation: 3, additionalLength: 24, keys: [KA, KA, KA] });
  });

  it('tells initiators apart by ISID and iSCSI names case-insensitively', () => {
    const { engine } = lun();
    const port1 = new Initiator(engine, nexus(iscsi(NODE_A, '00023d000001')));
    const port2 = new Initiator(engine, nexus(iscsi(NODE_A, '00023d000002')));
    const shouting = new Initiator(engine, nexus(iscsi(NODE_A.toUpperCase(), '00023d000001')));
    expectGood(port1.registerIgnore(KA));
    expectGood(port2.registerIgnore(KB));
    expectGood(shouting.register(KA, KC));
    expect(port1.readKeys().keys).toEqual([KC, KB]);
  });
});

describe('unregistering the reservation holder (§4.1.1)', () => {
  it.each(ALL_TYPES)('type %i', (type) => {
    const { a, b, c } = lun();
    expectGood(a.registerIgnore(KA));
    expectGood(b.registerIgnore(KB));
    expectGood(c.registerIgnore(KC));
    expectGood(a.reserve(KA, type));
    expectGood(a.register(KA, 0n));

    if (isAllRegistrants(type)) {
      // Remaining registrants still hold it; no unit attention.
      expect(b.readReservation().reservation).toEqual({ key: 0n, scope: 0, type });
      expect(b.drainUnitAttentions()).toEqual([]);
      expect(c.drainUnitAttentions()).toEqual([]);
      expectGood(b.registerIgnore(0n));
      expect(c.readReservation().reservation).toEqual({ key: 0n, scope: 0, type });
      expectGood(c.registerIgnore(0n));
      expect(a.readReservation().reservation).toBeNull();
    } else {
      // The implicit release is announced (2A/04) only for the registrants-only types.
      const expected: [number, number][] = isRegistrantsOnly(type) ? [[0x2a, 0x04]] : [];
      expect(b.drainUnitAttentions()).toEqual(expected);
      expect(c.drainUnitAttentions()).toEqual(expected);
      expect(a.drainUnitAttentions()).toEqual([]);
      expect(b.readReservation().reservation).toBeNull();
      expect(b.readKeys().keys).toEqual([KB, KC]);
    }
  });

  it('a non-holder unregistering leaves the reservation alone', () => {
    const { a, b } = lun();
    expectGood(a.registerIgnore(KA));
    expectGood(b.registerIgnore(KB));
    expectGood(a.reserve(KA, WE_RO));
    expectGood(b.registerIgnore(0n));
    expect(a.readReservation().reservation).toEqual({ key: KA, scope: 0, type: WE_RO });
    expect(a.drainUnitAttentions()).toEqual([]);
  });
});

describe('PRgeneration (§4.8)', () => {
  it('counts REGISTER-family commands only, once each', () => {
    const { a, b } = lun();
    const steps: [string, () => ReturnType<Initiator['in']>, number][] = [
      ['R&IEK register', () => a.registerIgnore(KA), 1],
      ['REGISTER register', () => b.register(0n, KB), 1],
      ['REGISTER key change', () => a.register(KA, KC), 1],
      ['RESERVE', () => a.reserve(KC, EA), 0],
      ['RESERVE again (no change)', () => a.reserve(KC, EA), 0],
      ['RELEASE', () => a.release(KC, EA), 0],
      ['RELEASE without reservation', () => a.release(KC, EA), 0],
      ['REGISTER with wrong key', () => a.register(KA, KB), 0],
      ['RESERVE with invalid type', () => a.reserve(KC, 0), 0],
      ['REGISTER unregister', () => b.register(KB, 0n), 1],
      ['R&IEK unregister', () => a.registerIgnore(0n), 1],
      ['REGISTER no-op from an unregistered nexus', () => a.register(0n, 0n), 1],
    ];
    for (const [name, step, delta] of steps) {
      const before = a.generation();
      step();
      expect(a.generation(), name).toBe(before + delta);
    }
  });

  it('wraps at 2^32', () => {
    const engine = PrEngine.restore(
      { version: 1, generation: 0xffffffff, aptpl: true, registrations: [], reservation: null },
      { targetPorts: [1] },
    );
    const a = new Initiator(engine, nexus(iscsi(NODE_A)));
    expect(a.generation()).toBe(0xffffffff);
    expectGood(a.registerIgnore(KA));
    expect(a.generation()).toBe(0);
  });
});

describe('parameter list length (§2.2, §3 step 4)', () => {
  it.each([0, 8, 23, 25, 28, 32])('REGISTER with a %i-byte list is PARAMETER LIST LENGTH ERROR', (length) => {
    const { a } = lun();
    const list = Buffer.concat([basicParams({ saKey: KA }), Buffer.alloc(32)]).subarray(0, length);
    expectLengthError(a.out(SA.REGISTER, list));
    expect(a.readKeys().keys).toEqual([]);
  });

  it.each([SA.RESERVE, SA.RELEASE, SA.CLEAR, SA.PREEMPT, SA.PREEMPT_AND_ABORT, SA.REGISTER_IGNORE])(
    'service action %i with a 23-byte list is PARAMETER LIST LENGTH ERROR, even unregistered',
    (action) => {
      const { a } = lun();
      expectLengthError(a.out(action, basicParams({ key: KA }).subarray(0, 23), { type: WE }));
    },
  );

  it('fewer delivered bytes than PARAMETER LIST LENGTH is a length error', () => {
    const { engine } = lun();
    const r = engine.execute(nexus(iscsi(NODE_A)), prOutCdb(SA.REGISTER, 0, 24), basicParams({ saKey: KA }).subarray(0, 20));
    expectLengthError(r);
  });

  it('uses all 32 bits of PARAMETER LIST LENGTH (bytes 5-8), not only bytes 7-8', () => {
    const { engine } = lun();
    const cdb = prOutCdb(SA.REGISTER, 0, 0x10018);
    expect(cdb.subarray(5, 9)).toEqual(Buffer.from([0x00, 0x01, 0x00, 0x18]));
    expectLengthError(engine.execute(nexus(iscsi(NODE_A)), cdb, basicParams({ saKey: KA })));
  });

  it('ignores delivered bytes beyond PARAMETER LIST LENGTH', () => {
    const { engine, a } = lun();
    const delivered = Buffer.concat([basicParams({ saKey: KA }), Buffer.alloc(8, 0xff)]);
    expectGood(engine.execute(a.nexus, prOutCdb(SA.REGISTER, 0, 24), delivered));
    expect(a.readKeys().keys).toEqual([KA]);
  });

  it.each([
    ['shorter than 28 bytes', basicParams({ saKey: KA, specIPt: true }).subarray(0, 26)],
    ['TransportID data longer than the list', basicParams({ saKey: KA, specIPt: true, transportIds: [iscsiTid(NODE_B)], transportIdDataLength: 48 })],
    ['TransportID data shorter than the list', basicParams({ saKey: KA, specIPt: true, transportIds: [iscsiTid(NODE_B)], transportIdDataLength: 24 })],
  ])('SPEC_I_PT list %s is PARAMETER LIST LENGTH ERROR', (_name, list) => {
    const { a } = lun();
    expectLengthError(a.out(SA.REGISTER, list));
    expect(a.readKeys().keys).toEqual([]);
  });
});

describe('PR OUT check order (§3)', () => {
  it.each([8, 9, 0x10, 0x1f])('service action %i (incl. REPLACE LOST RESERVATION) is INVALID FIELD IN CDB first', (action) => {
    const { a } = lun();
    expectCheck(a.out(action, Buffer.alloc(0)), ILLEGAL, 0x24, 0x00);
  });

  it('a length error comes before the registration check', () => {
    const { a } = lun();
    expectLengthError(a.out(SA.RESERVE, Buffer.alloc(30), { type: WE }));
  });

  it.each([SA.RESERVE, SA.RELEASE, SA.CLEAR, SA.PREEMPT, SA.PREEMPT_AND_ABORT, SA.REGISTER_IGNORE])(
    'SPEC_I_PT with service action %i is INVALID FIELD IN PARAMETER LIST before the registration check',
    (action) => {
      const { a } = lun();
      expectInvalidParam(a.out(action, basicParams({ saKey: KB, specIPt: true }), { type: WE }));
      expectInvalidParam(a.out(action, basicParams({ saKey: KB, specIPt: true, transportIds: [iscsiTid(NODE_B)] }), { type: WE }));
    },
  );

  it('an unregistered nexus gets RESERVATION CONFLICT before the TYPE is looked at', () => {
    const { a } = lun();
    expectConflict(a.reserve(0n, 0));
    expectConflict(a.release(0n, 0));
    expectConflict(a.clear(0n));
    expectConflict(a.preempt(0n, 0n, 0));
  });

  it('a wrong reservation key gets RESERVATION CONFLICT before the TYPE is looked at', () => {
    const { a } = lun();
    expectGood(a.registerIgnore(KA));
    expectConflict(a.reserve(KB, 0));
    expectConflict(a.preempt(KB, 0n, 0));
  });

  it('ignores ALL_TG_PT and APTPL outside the REGISTER family (§2.1)', () => {
    const { a } = lun();
    expectGood(a.registerIgnore(KA));
    expectGood(a.out(SA.RESERVE, basicParams({ key: KA, allTgPt: true, aptpl: true }), { type: WE }));
    expect(a.in(IN.REPORT_CAPABILITIES).data[3]! & 0x01).toBe(0);
  });

  it('rejects other operation codes with INVALID COMMAND OPERATION CODE', () => {
    const { engine, a } = lun();
    const cdb = Buffer.alloc(16);
    cdb[0] = 0x12;
    expectCheck(engine.execute(a.nexus, cdb, Buffer.alloc(0)), ILLEGAL, 0x20, 0x00);
  });
});

describe('SPEC_I_PT (§4.1)', () => {
  it('registers the listed initiators on the receiving target port, atomically, with one generation step', () => {
    const { engine, a, b, c } = lun();
    const r = a.register(0n, KA, { specIPt: true, transportIds: [iscsiTid(NODE_B), iscsiTid(NODE_C)] });
    expectGood(r);
    expect(a.readKeys()).toEqual({ generation: 1, additionalLength: 24, keys: [KA, KA, KA] });
    expectGood(b.reserve(KA, WE));
    expectGood(c.release(KA, WE));
    expectConflict(new Initiator(engine, nexus(iscsi(NODE_B), 2)).reserve(KA, WE));
  });

  it('registers FC and SAS TransportIDs', () => {
    const { engine, a } = lun();
    expectGood(a.register(0n, KA, { specIPt: true, transportIds: [fcTid('21000024ff5a2b3c'), sasTid('500605b0000272b0')] }));
    expectGood(new Initiator(engine, nexus(fc('21000024ff5a2b3c'))).reserve(KA, EA));
    expectGood(new Initiator(engine, nexus(sas('500605b0000272b0'))).release(KA, EA));
  });

  it('with ALL_TG_PT registers every listed initiator on every target port', () => {
    const { a, on } = lun();
    expectGood(a.register(0n, KA, { specIPt: true, allTgPt: true, transportIds: [iscsiTid(NODE_B)] }));
    expect(a.readKeys().keys).toEqual([KA, KA, KA, KA]);
    expectGood(on(NODE_B, 2).reserve(KA, WE));
  });

  it('treats the sender listed in its own list as itself', () => {
    const { a } = lun();
    expectGood(a.register(0n, KA, { specIPt: true, transportIds: [iscsiTid(NODE_A), iscsiTid(NODE_B)] }));
    expect(a.readKeys().keys).toEqual([KA, KA]);
  });

  it('registers nothing when one TransportID is malformed', () => {
    const { a } = lun();
    const truncated = iscsiTid(NODE_C);
    truncated.writeUInt16BE(truncated.readUInt16BE(2) + 4, 2); // straddles the end of the list
    const r = a.register(0n, KA, { specIPt: true, transportIds: [iscsiTid(NODE_B), truncated] });
    expectInvalidParam(r);
    expect(a.readKeys()).toEqual({ generation: 0, additionalLength: 0, keys: [] });
  });

  it('registers nothing when a listed I_T nexus is already registered', () => {
    const { a, b } = lun();
    expectGood(b.registerIgnore(KB));
    expectInvalidParam(a.register(0n, KA, { specIPt: true, transportIds: [iscsiTid(NODE_C), iscsiTid(NODE_B)] }));
    expect(a.readKeys().keys).toEqual([KB]);
  });

  it('does nothing for SARK 0', () => {
    const { a } = lun();
    expectGood(a.register(0n, 0n, { specIPt: true, transportIds: [iscsiTid(NODE_B)] }));
    expect(a.readKeys().keys).toEqual([]);
  });

  it('answers INSUFFICIENT REGISTRATION RESOURCES when the registrations do not fit', () => {
    const { a, b } = lun({ targetPorts: [1, 2], maxRegistrations: 3 });
    expectGood(b.registerIgnore(KB));
    expectCheck(a.register(0n, KA, { specIPt: true, transportIds: [iscsiTid(NODE_C), iscsiTid('iqn.x')] }), ILLEGAL, 0x55, 0x04);
    expect(a.readKeys().keys).toEqual([KB]);
    expectGood(a.register(0n, KA, { specIPt: true, transportIds: [iscsiTid(NODE_C)] }));
    expectCheck(new Initiator(a.engine, nexus(iscsi('iqn.x'))).registerIgnore(KC), ILLEGAL, 0x55, 0x04);
  });
});

describe('ALL_TG_PT (§4.1)', () => {
  it('registers the initiator port on every target port', () => {
    const { a, on } = lun();
    expectGood(a.registerIgnore(KA, { allTgPt: true }));
    expect(a.readKeys()).toEqual({ generation: 1, additionalLength: 16, keys: [KA, KA] });
    expectGood(on(NODE_A, 2).reserve(KA, WE));
  });

  it('changes the key and unregisters on every target port, whichever port asks', () => {
    const { a, on } = lun();
    const a2 = on(NODE_A, 2);
    expectGood(a.register(0n, KA, { allTgPt: true }));
    expectGood(a2.register(KA, KB));
    expect(a.readKeys().keys).toEqual([KB, KB]);
    expectGood(a2.register(KB, 0n));
    expect(a.readKeys().keys).toEqual([]);
  });

  it('does not overlap an existing registration of the same initiator port', () => {
    const { a, on } = lun();
    expectGood(on(NODE_A, 2).registerIgnore(KB));
    expectInvalidParam(a.registerIgnore(KA, { allTgPt: true }));
    expect(a.readKeys().keys).toEqual([KB]);
  });
});

describe('APTPL and persistentStateChanged (§7.2)', () => {
  const ptplActive = (i: Initiator): number => i.in(IN.REPORT_CAPABILITIES).data[3]! & 0x01;

  it('reports changes only while APTPL is or was active', () => {
    const { a, b } = lun();
    const steps: [string, () => ReturnType<Initiator['in']>, boolean, number][] = [
      ['register without APTPL', () => a.registerIgnore(KA), false, 0],
      ['reserve without APTPL', () => a.reserve(KA, WE), false, 0],
      ['register with APTPL', () => b.registerIgnore(KB, { aptpl: true }), true, 1],
      ['reserve again (no change)', () => a.reserve(KA, WE), false, 1],
      ['failed command', () => b.reserve(KB, WE), false, 1],
      ['PR IN', () => a.in(IN.READ_FULL_STATUS), false, 1],
      ['release', () => a.release(KA, WE), true, 1],
      ['key change by R&IEK keeping APTPL', () => a.registerIgnore(KC, { aptpl: true }), true, 1],
      ['turning APTPL off', () => b.register(KB, KA), true, 0],
      ['change with APTPL off', () => b.reserve(KA, EA), false, 0],
      ['no-op register with APTPL does not turn it on', () => new Initiator(a.engine, nexus(iscsi('iqn.x'))).register(0n, 0n, { aptpl: true }), false, 0],
    ];
    for (const [name, step, changed, active] of steps) {
      expect(step().persistentStateChanged, name).toBe(changed);
      expect(ptplActive(a), name).toBe(active);
    }
  });

  it.each(ALL_TYPES)('RESERVE of %i under APTPL is a persistent change; a repeat is not', (type) => {
    const { a } = lun();
    expectGood(a.registerIgnore(KA, { aptpl: true }));
    expect(a.reserve(KA, type).persistentStateChanged, TYPE_NAMES[type]).toBe(true);
    expect(a.reserve(KA, type).persistentStateChanged, TYPE_NAMES[type]).toBe(false);
  });
});
