/**
 * The engine's memory of I_T nexuses is bounded: the simulated default gives
 * every client process an initiator of its own, so unit-attention state for
 * every process that ever sent a command would otherwise grow for ever. Beyond
 * 1024 nexuses (or 4 x maxRegistrations) the oldest unregistered ones are
 * forgotten, as a target forgets a lost I_T nexus; registrants never are.
 */
import { describe, expect, it } from 'vitest';
import { expectGood, lun, WE_RO } from './helpers.js';

const KA = 0xa1n;
const KB = 0xb2n;

let processes = 0;

/** `count` initiators never seen before, each sending commands until it has seen the power-on condition. */
function contact(on: ReturnType<typeof lun>['on'], count: number): void {
  for (let i = 0; i < count; i++) expect(on(`iqn.2024-01.test:process-${processes++}`).drainUnitAttentions()).toEqual([[0x29, 0x00]]);
}

describe('I_T nexus memory', () => {
  it('a quiet unregistered nexus is remembered among 1024, then forgotten: it sees 29/00 again, as a new nexus', () => {
    const { engine, a, on } = lun();
    engine.queuePowerOnReset();
    expect(a.drainUnitAttentions()).toEqual([[0x29, 0x00]]);
    contact(on, 1022);
    expect(a.drainUnitAttentions()).toEqual([]);
    contact(on, 1024);
    expect(a.drainUnitAttentions()).toEqual([[0x29, 0x00]]);
  });

  it('a registrant is never forgotten: its pending 2A/04 survives thousands of other nexuses', () => {
    const { engine, a, b, on } = lun();
    engine.queuePowerOnReset();
    expect(a.drainUnitAttentions()).toEqual([[0x29, 0x00]]);
    expect(b.drainUnitAttentions()).toEqual([[0x29, 0x00]]);
    expectGood(a.registerIgnore(KA));
    expectGood(b.registerIgnore(KB));
    expectGood(a.reserve(KA, WE_RO));
    // Releasing a registrants-only reservation tells the other registrants (spc4r17 5.7.11.2).
    expectGood(a.release(KA, WE_RO));
    contact(on, 3000);
    expect(b.drainUnitAttentions()).toEqual([[0x2a, 0x04]]);
    expect(a.readKeys().keys).toEqual([KA, KB]);
  });
});
