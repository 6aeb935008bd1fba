import { describe, expect, it } from 'vitest';
import {
  EA,
  expectCheck,
  expectConflict,
  expectGood,
  hex,
  IN,
  lun,
  RESERVATION_CONFLICT,
  SA,
  WE,
  WE_AR,
  WE_RO,
} from './helpers.js';

/*
 * Target profiles: "lio" and "tgt" answer where those targets depart from
 * SPC-4 (spc4-pr-semantics.md §8); the default keeps the standard. The
 * recorded-LIO comparison (test/e2e/sim-vs-lio.test.ts) checks "lio" against
 * real LIO replies; these tests pin each switch on its own.
 */
const KA = 0xaan;
const KB = 0xbbn;
const NOT_READY = 0x2;
const ILLEGAL_REQUEST = 0x5;
const UNIT_ATTENTION = 0x6;

describe('lio profile', () => {
  const lio = () => lun({ targetPorts: [1, 2], profile: 'lio' });

  it('answers NOT READY 08/00 to RESERVE, RELEASE, CLEAR from an unregistered nexus while nothing is reserved, RESERVATION CONFLICT once something is', () => {
    const { a, b } = lio();
    expectCheck(b.reserve(KB, WE), NOT_READY, 0x08, 0x00);
    expectCheck(b.release(KB, WE), NOT_READY, 0x08, 0x00);
    expectCheck(b.clear(KB), NOT_READY, 0x08, 0x00);
    expectConflict(b.preempt(KB, KA, WE));
    expectGood(a.registerIgnore(KA));
    expectGood(a.reserve(KA, WE));
    expectConflict(b.reserve(KB, WE));
  });

  it('does not count an unregister in PRgeneration, checks PREEMPT TYPE, and answers a RELEASE of the wrong type with a conflict', () => {
    const { a, b } = lio();
    expectGood(a.registerIgnore(KA));
    expectGood(b.registerIgnore(KB));
    const generation = a.generation();
    expectGood(b.registerIgnore(0n));
    expect(a.generation()).toBe(generation);
    expectGood(b.registerIgnore(KB));
    expectCheck(a.preempt(KA, KB, 0), ILLEGAL_REQUEST, 0x24, 0x00);
    expectGood(a.reserve(KA, WE_RO));
    expect(a.release(KA, WE).status).toBe(RESERVATION_CONFLICT);
    expectCheck(a.reserve(KA, WE_RO, 1), ILLEGAL_REQUEST, 0x26, 0x00);
  });

  it('rejects PR IN allocation lengths below 8 and reports ALLOW COMMANDS 001b', () => {
    const { a } = lio();
    expectCheck(a.in(IN.READ_KEYS, 4), ILLEGAL_REQUEST, 0x24, 0x00);
    expect(a.in(IN.REPORT_CAPABILITIES, 6).data).toEqual(hex('0008 1d 90 ea01'));
  });

  it('asks for the state file after every REGISTER, APTPL or not, and NOT READY 08/00 if it cannot be written; other commands only log', () => {
    const { a } = lio();
    const registered = a.registerIgnore(KA);
    expect(registered.persistentStateChanged).toBe(true);
    expect(registered.persistFailure).toEqual({ key: NOT_READY, asc: 0x08, ascq: 0x00 });
    const reserved = a.reserve(KA, WE);
    expect(reserved.persistentStateChanged).toBe(false);
    expect(reserved.persistFailure).toBeNull();
  });
});

describe('tgt profile', () => {
  const tgt = () => lun({ targetPorts: [1, 2], profile: 'tgt' });

  it('has no PREEMPT AND ABORT, READ FULL STATUS, SPEC_I_PT, ALL_TG_PT or APTPL, and says so in REPORT CAPABILITIES', () => {
    const { a, b } = tgt();
    expectGood(a.registerIgnore(KA));
    expectGood(b.registerIgnore(KB));
    expectCheck(a.preemptAbort(KA, KB, WE), ILLEGAL_REQUEST, 0x24, 0x00);
    expectCheck(a.in(IN.READ_FULL_STATUS), ILLEGAL_REQUEST, 0x24, 0x00);
    expectCheck(a.registerIgnore(KA, { aptpl: true }), ILLEGAL_REQUEST, 0x24, 0x00);
    expectCheck(a.registerIgnore(KA, { allTgPt: true }), ILLEGAL_REQUEST, 0x24, 0x00);
    expect(a.in(IN.REPORT_CAPABILITIES).data).toEqual(hex('0008 00 80 ea01 0000'));
    expectCheck(a.out(SA.REGISTER, Buffer.alloc(28), { length: 28 }), ILLEGAL_REQUEST, 0x24, 0x00);
  });

  it('announces removed registrations with 2A/03, never removes the preempting sender, and ignores SARK 0 without a reservation', () => {
    const { a, b } = tgt();
    expectGood(a.registerIgnore(KA));
    expectGood(b.registerIgnore(KA));
    expectGood(a.preempt(KA, KA, WE_RO));
    expect(a.readKeys().keys).toEqual([KA]);
    expectCheck(b.in(IN.READ_KEYS), UNIT_ATTENTION, 0x2a, 0x03);
    expectGood(a.preempt(KA, 0n, WE));
    expectGood(a.reserve(KA, WE));
    expectCheck(a.preempt(KA, 0n, WE), ILLEGAL_REQUEST, 0x24, 0x00);
  });

  it('inverts the RELEASE unit attentions and announces the unregistering holder of WE/EA too', () => {
    const { a, b } = tgt();
    expectGood(a.registerIgnore(KA));
    expectGood(b.registerIgnore(KB));
    expectGood(a.reserve(KA, WE_AR));
    expectGood(a.release(KA, WE_AR));
    expect(b.drainUnitAttentions()).toEqual([]);
    expectGood(a.reserve(KA, WE));
    expectGood(a.release(KA, WE));
    expect(b.drainUnitAttentions()).toEqual([[0x2a, 0x04]]);
    expectGood(a.reserve(KA, EA));
    expectGood(a.registerIgnore(0n));
    expect(b.drainUnitAttentions()).toEqual([[0x2a, 0x04]]);
  });
});

describe('spc4 profile (the default)', () => {
  it('keeps the standard answers where the other profiles depart', () => {
    const { a, b } = lun();
    expectConflict(b.reserve(KB, WE));
    expectGood(a.registerIgnore(KA));
    expect(a.in(IN.READ_KEYS, 4).data).toEqual(hex('0000 0001'));
    expectGood(a.reserve(KA, WE_RO));
    expectCheck(a.release(KA, WE), ILLEGAL_REQUEST, 0x26, 0x04);
  });
});
