import { describe, expect, it } from 'vitest';
import {
  ALL_TYPES,
  EA,
  EA_AR,
  EA_RO,
  expectCheck,
  expectConflict,
  expectGood,
  Initiator,
  iscsiTid,
  isAllRegistrants,
  isRegistrantsOnly,
  lun,
  NODE_C,
  TYPE_NAMES,
  WE,
  WE_AR,
  WE_RO,
} from './helpers.js';

const KA = 0xaaaa0000aaaa0000n;
const KB = 0xbbbbn;
const KC = 0xccccn;

type Role = 'holder' | 'registered non-holder' | 'unregistered';
const ROLES: Role[] = ['holder', 'registered non-holder', 'unregistered'];

/** a reserves `type`; b is registered (a holder too under AR types); c is not registered. */
function reserved(type: number): ReturnType<typeof lun> & { as: (role: Role) => [Initiator, bigint] } {
  const setup = lun();
  expectGood(setup.a.registerIgnore(KA));
  expectGood(setup.b.registerIgnore(KB));
  expectGood(setup.a.reserve(KA, type));
  const as = (role: Role): [Initiator, bigint] =>
    role === 'holder' ? [setup.a, KA] : role === 'registered non-holder' ? [setup.b, KB] : [setup.c, 0n];
  return { ...setup, as };
}

/**
 * reserved(type) plus d registered with KC; the command's sender is the holder
 * (a) or the registered non-holder (b), `others` the remaining registrants.
 */
function reservedWithFourth(type: number, who: string) {
  const { a, b, c, on } = reserved(type);
  const d = on('iqn.2008-11.org.linux-kvm:node-d');
  expectGood(d.registerIgnore(KC));
  const [sender, key, others] = who === 'holder' ? ([a, KA, [b, d]] as const) : ([b, KB, [a, d]] as const);
  return { a, c, sender, key, others, generation: a.generation() };
}

const name = (type: number): string => TYPE_NAMES[type]!;

describe('RESERVE (§4.2)', () => {
  it.each(ALL_TYPES)('creates a %i reservation when none exists', (type) => {
    const { a, b } = lun();
    expectGood(a.registerIgnore(KA));
    expectGood(a.reserve(KA, type));
    // §5.3: the holder's key, or 0 for the all-registrants types.
    expect(b.readReservation().reservation).toEqual({ key: isAllRegistrants(type) ? 0n : KA, scope: 0, type });
    expect(b.drainUnitAttentions()).toEqual([]);
  });

  it('an unregistered nexus cannot reserve an unreserved unit', () => {
    const { c } = lun();
    expectConflict(c.reserve(0n, WE));
    expect(c.readReservation().reservation).toBeNull();
  });

  const rows = ALL_TYPES.flatMap((held) =>
    ALL_TYPES.flatMap((requested) => ROLES.map((role) => [name(held), name(requested), role, held, requested] as const)),
  );
  it.each(rows)('held %s, RESERVE %s from the %s', (_h, _r, role, held, requested) => {
    const { as, c } = reserved(held);
    const [sender, key] = as(role);
    // Only a holder may re-reserve, and only with the same type; under AR every registrant holds.
    const isHolder = role === 'holder' || (role === 'registered non-holder' && isAllRegistrants(held));
    const r = sender.reserve(key, requested);
    if (isHolder && requested === held) expectGood(r);
    else expectConflict(r);
    expect(c.readReservation().reservation).toEqual({ key: isAllRegistrants(held) ? 0n : KA, scope: 0, type: held });
  });

  it.each([0, 2, 4, 9, 10, 15])('rejects obsolete or reserved TYPE %i with INVALID FIELD IN CDB', (type) => {
    const { a } = lun();
    expectGood(a.registerIgnore(KA));
    expectCheck(a.reserve(KA, type), 0x5, 0x24, 0x00);
    expect(a.readReservation().reservation).toBeNull();
  });

  it.each([1, 2, 15])('rejects SCOPE %i with INVALID FIELD IN CDB', (scope) => {
    const { a } = lun();
    expectGood(a.registerIgnore(KA));
    expectCheck(a.reserve(KA, WE, scope), 0x5, 0x24, 0x00);
  });

  it('a wrong key is a conflict even for the holder', () => {
    const { a } = reserved(WE);
    expectConflict(a.reserve(KB, WE));
  });

  it('SPDK scenario: under WE-AR another registrant may RESERVE WE-AR but not WE', () => {
    const { b, c } = reserved(WE_AR);
    expectGood(c.registerIgnore(KC));
    expectGood(c.reserve(KC, WE_AR));
    expectConflict(c.reserve(KC, WE));
    expectGood(b.reserve(KB, WE_AR));
  });
});

describe('RELEASE (§4.3)', () => {
  it('without a reservation completes GOOD', () => {
    const { a } = lun();
    expectGood(a.registerIgnore(KA));
    expectGood(a.release(KA, WE));
  });

  it('from an unregistered nexus is a conflict, with or without a reservation', () => {
    const { c } = lun();
    expectConflict(c.release(0n, WE));
    const held = reserved(WE);
    expectConflict(held.c.release(0n, WE));
  });

  it.each(ALL_TYPES)('of %i with a wrong key is a conflict', (type) => {
    const { a, b } = reserved(type);
    expectConflict(a.release(KC, type));
    expectConflict(b.release(KC, type));
    expect(a.readReservation().reservation?.type).toBe(type);
  });

  it.each([WE, EA, WE_RO, EA_RO])('of %i from a registered non-holder is GOOD without effect', (type) => {
    const { a, b } = reserved(type);
    expectGood(b.release(KB, type));
    expectGood(b.release(KB, type === WE ? EA : WE));
    expect(a.readReservation().reservation).toEqual({ key: KA, scope: 0, type });
    expect(a.drainUnitAttentions()).toEqual([]);
  });

  it.each(ALL_TYPES.flatMap((held) => ALL_TYPES.filter((t) => t !== held).map((t) => [name(held), name(t), held, t] as const)))(
    'held %s, RELEASE %s by the holder is INVALID RELEASE OF PERSISTENT RESERVATION',
    (_h, _t, held, type) => {
      const { a } = reserved(held);
      expectCheck(a.release(KA, type), 0x5, 0x26, 0x04);
      expect(a.readReservation().reservation?.type).toBe(held);
    },
  );

  it.each(ALL_TYPES)('of %i with SCOPE 1 by the holder is INVALID RELEASE OF PERSISTENT RESERVATION', (type) => {
    const { a } = reserved(type);
    expectCheck(a.release(KA, type, 1), 0x5, 0x26, 0x04);
  });

  it.each(ALL_TYPES.flatMap((type) => (isAllRegistrants(type) ? ['holder', 'registered non-holder'] : ['holder']).map((who) => [name(type), who, type] as const)))(
    'of %s by the %s releases it; 2A/04 to the other registrants only for RO/AR types',
    (_n, who, type) => {
      const { a, c, sender, key, others, generation } = reservedWithFourth(type, who);
      expectGood(sender.release(key, type));
      const expected: [number, number][] = isRegistrantsOnly(type) || isAllRegistrants(type) ? [[0x2a, 0x04]] : [];
      for (const other of others) expect(other.drainUnitAttentions()).toEqual(expected);
      expect(sender.drainUnitAttentions()).toEqual([]);
      expect(c.drainUnitAttentions()).toEqual([]);
      expect(a.readReservation()).toEqual({ generation, reservation: null });
      expect(a.readKeys().keys).toEqual([KA, KB, KC]);
    },
  );
});

describe('CLEAR (§4.4)', () => {
  it.each(ALL_TYPES.flatMap((type) => (['holder', 'registered non-holder'] as const).map((who) => [name(type), who, type] as const)))(
    'under %s from the %s removes everything, 2A/03 to the other former registrants, generation +1',
    (_n, who, type) => {
      const { a, c, sender, key, others, generation } = reservedWithFourth(type, who);
      expectGood(sender.clear(key));
      for (const other of others) expect(other.drainUnitAttentions()).toEqual([[0x2a, 0x03]]);
      expect(sender.drainUnitAttentions()).toEqual([]);
      expect(c.drainUnitAttentions()).toEqual([]);
      expect(a.readKeys()).toEqual({ generation: generation + 1, additionalLength: 0, keys: [] });
      expect(a.readReservation().reservation).toBeNull();
    },
  );

  it('without a reservation still removes all registrations', () => {
    const { a, b } = lun();
    expectGood(a.registerIgnore(KA));
    expectGood(b.registerIgnore(KB));
    expectGood(a.clear(KA));
    expect(b.drainUnitAttentions()).toEqual([[0x2a, 0x03]]);
    expect(b.readKeys()).toEqual({ generation: 3, additionalLength: 0, keys: [] });
  });

  it('from an unregistered nexus or with a wrong key is a conflict', () => {
    const { a, c } = reserved(EA);
    expectConflict(c.clear(0n));
    expectConflict(a.clear(KB));
    expect(a.readKeys().keys).toEqual([KA, KB]);
  });
});

describe('PR OUT from a non-holder while a reservation exists (§6.3)', () => {
  const actions = {
    REGISTER: (i: Initiator, key: bigint) => i.registerIgnore(key + 1n),
    RESERVE: (i: Initiator, key: bigint, type: number) => i.reserve(key, type),
    RELEASE: (i: Initiator, key: bigint, type: number) => i.release(key, type),
    CLEAR: (i: Initiator, key: bigint) => i.clear(key),
    PREEMPT: (i: Initiator, key: bigint, type: number) => i.preempt(key, KA, type),
    'PREEMPT AND ABORT': (i: Initiator, key: bigint, type: number) => i.preemptAbort(key, KA, type),
    'REGISTER AND MOVE': (i: Initiator, key: bigint) =>
      i.move({ key, saKey: 0x77n, relativeTargetPort: 1, transportId: iscsiTid(NODE_C) }),
  };
  const table: Record<keyof typeof actions, [registered: 'A' | 'C', unregistered: 'A' | 'C']> = {
    REGISTER: ['A', 'A'],
    RESERVE: ['C', 'C'],
    RELEASE: ['A', 'C'],
    CLEAR: ['A', 'C'],
    PREEMPT: ['A', 'C'],
    'PREEMPT AND ABORT': ['A', 'C'],
    'REGISTER AND MOVE': ['C', 'C'],
  };
  const rows = [WE, EA, WE_RO, EA_RO, WE_AR, EA_AR].flatMap((type) =>
    (Object.keys(table) as (keyof typeof actions)[]).flatMap((action) =>
      // Under AR every registrant is a holder, so only the unregistered column applies.
      (isAllRegistrants(type) ? [1] : [0, 1]).map((column) => [name(type), action, column === 0 ? 'registered' : 'unregistered', type, column] as const),
    ),
  );
  it.each(rows)('held %s: %s from a %s non-holder', (_n, action, _who, type, column) => {
    const { b, c } = reserved(type);
    const [sender, key] = column === 0 ? [b, KB] : [c, 0n];
    const r = actions[action](sender, key, type);
    if (table[action][column] === 'A') expectGood(r);
    else expectConflict(r);
  });
});

describe('medium access under each reservation type (§6.1/§6.2, libiscsi ProutReserve.Access*)', () => {
  // [registered read, registered write, unregistered read, unregistered write] for a non-holder.
  const matrix: [number, [boolean, boolean, boolean, boolean]][] = [
    [EA, [false, false, false, false]],
    [WE, [true, false, true, false]],
    [EA_RO, [true, true, false, false]],
    [WE_RO, [true, true, true, false]],
    [EA_AR, [true, true, false, false]],
    [WE_AR, [true, true, true, false]],
  ];
  const allowed = (ok: boolean): 'allowed' | 'conflict' => (ok ? 'allowed' : 'conflict');

  it.each(matrix)('type %i', (type, [regRead, regWrite, unregRead, unregWrite]) => {
    const { engine, a, b } = reserved(type);
    expect(engine.checkAccess(a.nexus, 'read')).toBe('allowed');
    expect(engine.checkAccess(a.nexus, 'write')).toBe('allowed');
    expect(engine.checkAccess(b.nexus, 'read')).toBe(allowed(regRead));
    expect(engine.checkAccess(b.nexus, 'write')).toBe(allowed(regWrite));
    expectGood(b.registerIgnore(0n));
    expect(engine.checkAccess(b.nexus, 'read')).toBe(allowed(unregRead));
    expect(engine.checkAccess(b.nexus, 'write')).toBe(allowed(unregWrite));
  });

  it('everything is allowed without a reservation', () => {
    const { engine, c } = lun();
    expect(engine.checkAccess(c.nexus, 'write')).toBe('allowed');
  });
});
