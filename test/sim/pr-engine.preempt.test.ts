import { describe, expect, it } from 'vitest';
import {
  ALL_TYPES,
  EA,
  EA_AR,
  EA_RO,
  expectCheck,
  expectConflict,
  expectGood,
  expectUnitAttention,
  IN,
  Initiator,
  isAllRegistrants,
  lun,
  WE,
  WE_AR,
  WE_RO,
} from './helpers.js';

const KA = 0xa1a1a1a1n;
const KB = 0xb2b2b2b2n;
const KC = 0xc3c3c3c3n;

const NON_AR = [WE, EA, WE_RO, EA_RO] as const;
const AR = [WE_AR, EA_AR] as const;

/** a, b, c registered with KA, KB, KC; a reserves `type` when given. */
function registered(type?: number): ReturnType<typeof lun> {
  const setup = lun();
  expectGood(setup.a.registerIgnore(KA));
  expectGood(setup.b.registerIgnore(KB));
  expectGood(setup.c.registerIgnore(KC));
  if (type !== undefined) expectGood(setup.a.reserve(KA, type));
  return setup;
}

const variants = [
  ['PREEMPT', (i: Initiator, rk: bigint, sark: bigint, type: number) => i.preempt(rk, sark, type), false],
  ['PREEMPT AND ABORT', (i: Initiator, rk: bigint, sark: bigint, type: number) => i.preemptAbort(rk, sark, type), true],
] as const;

/** Unit attentions a preempted nexus receives: 2A/05, plus 2F/00 for PREEMPT AND ABORT with TAS=0 (§4.5, §4.9). */
const preemptedUAs = (abort: boolean): [number, number][] => (abort ? [[0x2a, 0x05], [0x2f, 0x00]] : [[0x2a, 0x05]]);

describe.each(variants)('%s (§4.5)', (_name, preempt, abort) => {
  it('from an unregistered nexus or with a wrong key is a conflict', () => {
    const { a, b, on } = registered(WE);
    expectConflict(preempt(on('iqn.x'), 0n, KA, WE));
    expectConflict(preempt(b, KC, KA, WE));
    expect(a.readReservation().reservation).toEqual({ key: KA, scope: 0, type: WE });
  });

  describe('without a reservation', () => {
    it('SARK 0 is INVALID FIELD IN PARAMETER LIST', () => {
      const { b } = registered();
      expectCheck(preempt(b, KB, 0n, WE), 0x5, 0x26, 0x00);
    });

    it('removes the registrations with SARK, UA to each, generation +1 (libiscsi ProutPreempt)', () => {
      const { a, b, c } = registered();
      const generation = b.generation();
      expectGood(preempt(b, KB, KA, EA));
      expect(a.drainUnitAttentions()).toEqual(preemptedUAs(abort));
      expect(c.drainUnitAttentions()).toEqual([]);
      expect(b.drainUnitAttentions()).toEqual([]);
      expect(b.readKeys()).toEqual({ generation: generation + 1, additionalLength: 16, keys: [KB, KC] });
      expect(b.readReservation().reservation).toBeNull();
    });

    it('a SARK nobody holds is a conflict', () => {
      const { b } = registered();
      expectConflict(preempt(b, KB, 0x999n, WE));
      expect(b.readKeys().keys).toEqual([KA, KB, KC]);
    });

    it('ignores TYPE and SCOPE when only removing registrations', () => {
      const { b } = registered();
      expectGood(b.out(abort ? 5 : 4, Buffer.concat([b64(KB), b64(KA), Buffer.alloc(8)]), { type: 0, scope: 3 }));
      expect(b.readKeys().keys).toEqual([KB, KC]);
    });

    it('removes the sender too when its own key is SARK, without a UA for it', () => {
      const { a, b, on } = registered();
      const d = on('iqn.2008-11.org.linux-kvm:node-d');
      expectGood(d.registerIgnore(KB));
      expectGood(b.preempt(KB, KB, WE));
      expect(d.drainUnitAttentions()).toEqual([[0x2a, 0x05]]);
      expect(b.drainUnitAttentions()).toEqual([]);
      expect(a.readKeys().keys).toEqual([KA, KC]);
    });
  });

  describe.each(NON_AR)('holding type %i', (held) => {
    it.each(ALL_TYPES)('preempting the holder with new type %i', (type) => {
      const { a, b, c, on } = registered(held);
      const d = on('iqn.2008-11.org.linux-kvm:node-d');
      expectGood(d.registerIgnore(KA)); // shares the holder's key
      const generation = a.generation();
      expectGood(preempt(b, KB, KA, type));
      // Every nexus registered with the holder's key loses its registration.
      expect(a.drainUnitAttentions()).toEqual(preemptedUAs(abort));
      expect(d.drainUnitAttentions()).toEqual(preemptedUAs(abort));
      // The others hear about the release only if type or scope changed.
      expect(c.drainUnitAttentions()).toEqual(type === held ? [] : [[0x2a, 0x04]]);
      expect(b.drainUnitAttentions()).toEqual([]);
      expect(b.readKeys()).toEqual({ generation: generation + 1, additionalLength: 16, keys: [KB, KC] });
      expect(b.readReservation().reservation).toEqual({ key: isAllRegistrants(type) ? 0n : KB, scope: 0, type });
    });

    it('SARK 0 is INVALID FIELD IN PARAMETER LIST', () => {
      const { a, b } = registered(held);
      expectCheck(preempt(b, KB, 0n, held), 0x5, 0x26, 0x00);
      expect(a.readReservation().reservation?.key).toBe(KA);
    });

    it('another key removes only those registrations and keeps the reservation', () => {
      const { a, b, c } = registered(held);
      expectGood(preempt(b, KB, KC, WE));
      expect(c.drainUnitAttentions()).toEqual(preemptedUAs(abort));
      expect(a.drainUnitAttentions()).toEqual([]);
      expect(a.readReservation().reservation).toEqual({ key: KA, scope: 0, type: held });
      expect(a.readKeys().keys).toEqual([KA, KB]);
    });

    it('an invalid TYPE for the new reservation is INVALID FIELD IN CDB', () => {
      const { a, b } = registered(held);
      expectCheck(preempt(b, KB, KA, 0), 0x5, 0x24, 0x00);
      expectCheck(preempt(b, KB, KA, 9), 0x5, 0x24, 0x00);
      expect(a.readKeys().keys).toEqual([KA, KB, KC]);
    });

    it('the holder may preempt itself, staying registered, to change the type (SPDK)', () => {
      const { a, b, c, on } = registered(held);
      const d = on('iqn.2008-11.org.linux-kvm:node-d');
      expectGood(d.registerIgnore(KA));
      const type = held === EA ? WE : EA;
      expectGood(preempt(a, KA, KA, type));
      expect(d.drainUnitAttentions()).toEqual(preemptedUAs(abort));
      expect(b.drainUnitAttentions()).toEqual([[0x2a, 0x04]]);
      expect(c.drainUnitAttentions()).toEqual([[0x2a, 0x04]]);
      expect(a.drainUnitAttentions()).toEqual([]);
      expect(a.readReservation().reservation).toEqual({ key: KA, scope: 0, type });
      expect(a.readKeys().keys).toEqual([KA, KB, KC]);
    });
  });

  describe.each(AR)('holding all-registrants type %i', (held) => {
    it.each(ALL_TYPES)('SARK 0 preempts all, new type %i', (type) => {
      const { a, b, c } = registered(held);
      const generation = a.generation();
      expectGood(preempt(b, KB, 0n, type));
      expect(a.drainUnitAttentions()).toEqual(preemptedUAs(abort));
      expect(c.drainUnitAttentions()).toEqual(preemptedUAs(abort));
      expect(b.drainUnitAttentions()).toEqual([]);
      expect(b.readKeys()).toEqual({ generation: generation + 1, additionalLength: 8, keys: [KB] });
      expect(b.readReservation().reservation).toEqual({ key: isAllRegistrants(type) ? 0n : KB, scope: 0, type });
    });

    it('SARK 0 with an invalid TYPE is INVALID FIELD IN CDB', () => {
      const { b } = registered(held);
      expectCheck(preempt(b, KB, 0n, 4), 0x5, 0x24, 0x00);
      expect(b.readKeys().keys).toEqual([KA, KB, KC]);
    });

    it('a non-zero SARK removes those registrations and leaves the reservation', () => {
      const { a, b, c } = registered(held);
      expectGood(preempt(b, KB, KA, WE));
      expect(a.drainUnitAttentions()).toEqual(preemptedUAs(abort));
      expect(c.drainUnitAttentions()).toEqual([]);
      expect(b.readReservation().reservation).toEqual({ key: 0n, scope: 0, type: held });
    });

    it('the reservation ends when the last registration is removed', () => {
      const { a, on } = lun();
      const b = on('iqn.2008-11.org.linux-kvm:node-b');
      expectGood(a.registerIgnore(KA));
      expectGood(b.registerIgnore(KA));
      expectGood(a.reserve(KA, held));
      expectGood(preempt(a, KA, KA, held));
      expect(b.drainUnitAttentions()).toEqual(preemptedUAs(abort));
      expect(a.readReservation().reservation).toBeNull();
    });
  });
});

function b64(value: bigint): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(value);
  return out;
}

describe('unit attention delivery (§1, §3 step 1, §4.9)', () => {
  it('is reported before any other check, one per command, oldest first, and consumes the command', () => {
    const { a, b } = registered(WE_RO);
    expectGood(b.preemptAbort(KB, KA, EA));
    // a was preempted (2A/05, then 2F/00) and would now get a conflict for RESERVE.
    const first = a.reserve(KA, EA);
    expectUnitAttention(first, 0x2a, 0x05);
    expect(first.persistentStateChanged).toBe(false);
    expectUnitAttention(a.in(IN.READ_KEYS), 0x2f, 0x00);
    expectConflict(a.reserve(KA, EA));
  });

  it('precedes parameter and CDB errors, and even an unsupported operation code', () => {
    const { engine, a, b } = registered(WE_RO);
    expectGood(a.release(KA, WE_RO));
    expectGood(a.reserve(KA, WE_RO));
    expectGood(a.clear(KA));
    expectUnitAttention(b.out(9, Buffer.alloc(0)), 0x2a, 0x04);
    const cdb = Buffer.alloc(16);
    cdb[0] = 0x28;
    expectUnitAttention(engine.execute(b.nexus, cdb, Buffer.alloc(0)), 0x2a, 0x03);
    expectCheck(engine.execute(b.nexus, cdb, Buffer.alloc(0)), 0x5, 0x20, 0x00);
  });

  it('does not queue a condition that is already pending', () => {
    const { a, b } = registered(WE_RO);
    expectGood(a.release(KA, WE_RO));
    expectGood(a.reserve(KA, WE_RO));
    expectGood(a.release(KA, WE_RO));
    expect(b.drainUnitAttentions()).toEqual([[0x2a, 0x04]]);
  });

  it('power-on reset reaches every nexus, even one that never sent a command, once', () => {
    const { engine, a, b, on } = registered(WE);
    expectGood(b.preempt(KB, KC, WE));
    engine.queuePowerOnReset();
    for (const i of [a, b, on('iqn.never-seen-before'), on('iqn.2008-11.org.linux-kvm:node-c', 2)]) {
      expectUnitAttention(i.in(IN.READ_KEYS), 0x29, 0x00);
      expect(i.drainUnitAttentions()).toEqual([]);
    }
  });
});

describe('scenarios', () => {
  it('two-node dance: register, A reserves WE-RO, B preempts A, A re-registers, CLEAR', () => {
    const { a, b } = lun();
    expectGood(a.register(0n, KA));
    expectGood(b.register(0n, KB));
    expectGood(a.reserve(KA, WE_RO));
    expect(b.readReservation()).toEqual({ generation: 2, reservation: { key: KA, scope: 0, type: WE_RO } });

    expectGood(b.preempt(KB, KA, WE_RO));
    expectUnitAttention(a.in(IN.READ_RESERVATION), 0x2a, 0x05);
    expect(a.readReservation()).toEqual({ generation: 3, reservation: { key: KB, scope: 0, type: WE_RO } });
    expect(a.readKeys().keys).toEqual([KB]);
    expectConflict(a.register(KA, KA)); // its key is gone
    expect(a.engine.checkAccess(a.nexus, 'write')).toBe('conflict');

    expectGood(a.register(0n, KA));
    expect(a.engine.checkAccess(a.nexus, 'write')).toBe('allowed');
    expect(a.readKeys()).toEqual({ generation: 4, additionalLength: 16, keys: [KB, KA] });

    expectGood(b.clear(KB));
    expectUnitAttention(a.in(IN.READ_KEYS), 0x2a, 0x03);
    expect(a.readKeys()).toEqual({ generation: 5, additionalLength: 0, keys: [] });
    expect(a.readReservation().reservation).toBeNull();
    expect(b.drainUnitAttentions()).toEqual([]);
  });

  it('Windows failover-cluster validation (MS-CSVP primitives)', () => {
    const { a: node1, b: node2 } = lun();
    const key1 = 0x0000000100000001n;
    const key2 = 0x0000000200000002n;
    expectGood(node1.registerIgnore(key1));
    expectGood(node1.reserve(key1, WE_RO));
    expect(node1.readReservation().reservation).toEqual({ key: key1, scope: 0, type: WE_RO });

    // Unregistered node 2 must fail.
    expectConflict(node2.reserve(key2, WE_RO));
    expectConflict(node2.preempt(key2, key1, WE_RO));

    expectGood(node2.registerIgnore(key2));
    expectGood(node2.preempt(key2, key1, WE_RO));
    expect(node2.readReservation().reservation).toEqual({ key: key2, scope: 0, type: WE_RO });
    expect(node2.readKeys().keys).toEqual([key2]);
    expectGood(node2.release(key2, WE_RO));
    expect(node2.readReservation().reservation).toBeNull();
    expectGood(node2.registerIgnore(0n));
    expect(node2.readKeys()).toEqual({ generation: 4, additionalLength: 0, keys: [] });

    // Node 1 learns it was preempted, then cleans up: its unregister is a harmless no-op.
    expect(node1.drainUnitAttentions()).toEqual([[0x2a, 0x05]]);
    expectGood(node1.registerIgnore(0n));
  });
});
