import { describe, expect, it } from 'vitest';
import {
  EA,
  EA_AR,
  EA_RO,
  expectCheck,
  expectConflict,
  expectGood,
  fc,
  fcTid,
  IN,
  Initiator,
  iscsi,
  iscsiTid,
  lun,
  registerAndMoveParams,
  nexus,
  NODE_A,
  NODE_B,
  NODE_C,
  SA,
  sas,
  sasTid,
  TYPE_NAMES,
  WE,
  WE_AR,
  WE_RO,
} from './helpers.js';
import type { PrEngineOptions } from '../../src/sim/pr-engine.js';

const KA = 0xaaaan;
const KB = 0xbbbbn;
const KD = 0xddddn;

/** a holds `type` with KA, b is registered with KB, both on port 1. */
function held(type: number, options?: PrEngineOptions): ReturnType<typeof lun> {
  const setup = lun(options);
  expectGood(setup.a.registerIgnore(KA));
  expectGood(setup.b.registerIgnore(KB));
  expectGood(setup.a.reserve(KA, type));
  return setup;
}

describe('REGISTER AND MOVE (§4.6)', () => {
  it.each([WE, EA, WE_RO, EA_RO])('moves a %i reservation to a new I_T nexus, registering it', (type) => {
    const { engine, a, b } = held(type);
    const c2 = new Initiator(engine, nexus(iscsi(NODE_C), 2));
    const r = a.move({ key: KA, saKey: KD, relativeTargetPort: 2, transportId: iscsiTid(NODE_C) });
    expectGood(r);
    expect(r.persistentStateChanged).toBe(false);
    expect(b.readReservation()).toEqual({ generation: 3, reservation: { key: KD, scope: 0, type } });
    expect(b.readKeys().keys).toEqual([KA, KB, KD]);
    const status = b.in(IN.READ_FULL_STATUS).data;
    const third = 8 + 2 * (24 + iscsiTid(NODE_A).length);
    // Only the destination holds it now, on RTPI 2.
    expect(status[8 + 12]).toBe(0);
    expect(status.subarray(third + 12, third + 20)).toEqual(Buffer.from([0x01, type, 0, 0, 0, 0, 0x00, 0x02]));
    // No unit attention is defined for REGISTER AND MOVE.
    for (const i of [a, b, c2]) expect(i.drainUnitAttentions()).toEqual([]);
    expectGood(c2.release(KD, type));
  });

  it('with UNREG also unregisters the sender', () => {
    const { a, b } = held(WE);
    expectGood(a.move({ key: KA, saKey: KD, relativeTargetPort: 1, transportId: iscsiTid(NODE_C), unreg: true }));
    expect(b.readKeys()).toEqual({ generation: 3, additionalLength: 16, keys: [KB, KD] });
    expect(b.readReservation().reservation).toEqual({ key: KD, scope: 0, type: WE });
    expect(a.drainUnitAttentions()).toEqual([]);
  });

  it('overwrites the key of an already registered destination', () => {
    const { a, b } = held(EA);
    expectGood(a.move({ key: KA, saKey: KD, relativeTargetPort: 1, transportId: iscsiTid(NODE_B) }));
    expect(a.readKeys().keys).toEqual([KA, KD]);
    expectGood(b.release(KD, EA));
  });

  it.each([
    ['FC', fcTid('21000024ff5a2b3c'), fc('21000024ff5a2b3c')],
    ['SAS', sasTid('500605b0000272b0'), sas('500605b0000272b0')],
    ['iSCSI port name', iscsiTid(NODE_C, '00023d000001'), iscsi(NODE_C, '00023d000001')],
  ])('moves to a %s TransportID', (_kind, transportId, initiator) => {
    const { engine, a } = held(WE_RO);
    expectGood(a.move({ key: KA, saKey: KD, relativeTargetPort: 2, transportId }));
    const destination = new Initiator(engine, nexus(initiator, 2));
    expectGood(destination.release(KD, WE_RO));
    expect(a.drainUnitAttentions()).toEqual([[0x2a, 0x04]]);
  });

  it('takes APTPL from byte 17', () => {
    const { a } = held(WE);
    const r = a.move({ key: KA, saKey: KD, relativeTargetPort: 2, transportId: iscsiTid(NODE_C), aptpl: true });
    expect(r.persistentStateChanged).toBe(true);
    expect(a.in(IN.REPORT_CAPABILITIES).data[3]! & 0x01).toBe(1);
  });

  describe('errors leave everything unchanged', () => {
    const tid = iscsiTid(NODE_C);
    const badPadding = Buffer.from(tid);
    badPadding[badPadding.length - 1] = 0x41;
    const spi = Buffer.concat([Buffer.from([0x01]), Buffer.alloc(23)]);
    const rows: [string, number, (s: ReturnType<typeof lun>) => ReturnType<Initiator['in']>, 'conflict' | [number, number, number]][] = [
      ['unregistered sender', WE, ({ c }) => c.move({ key: 0n, saKey: KD, relativeTargetPort: 2, transportId: tid }), 'conflict'],
      ['wrong reservation key', WE, ({ a }) => a.move({ key: KB, saKey: KD, relativeTargetPort: 2, transportId: tid }), 'conflict'],
      ['SARK 0', WE, ({ a }) => a.move({ key: KA, saKey: 0n, relativeTargetPort: 2, transportId: tid }), [0x5, 0x26, 0x00]],
      ['registered non-holder', WE, ({ b }) => b.move({ key: KB, saKey: KD, relativeTargetPort: 2, transportId: tid }), 'conflict'],
      ['WE-AR reservation', WE_AR, ({ a }) => a.move({ key: KA, saKey: KD, relativeTargetPort: 2, transportId: tid }), 'conflict'],
      ['EA-AR reservation', EA_AR, ({ b }) => b.move({ key: KB, saKey: KD, relativeTargetPort: 2, transportId: tid }), 'conflict'],
      ["the sender's own initiator port", WE, ({ a }) => a.move({ key: KA, saKey: KD, relativeTargetPort: 2, transportId: iscsiTid(NODE_A.toUpperCase()) }), [0x5, 0x26, 0x00]],
      ['unknown RTPI', WE, ({ a }) => a.move({ key: KA, saKey: KD, relativeTargetPort: 3, transportId: tid }), [0x5, 0x26, 0x00]],
      ['RTPI 0', WE, ({ a }) => a.move({ key: KA, saKey: KD, relativeTargetPort: 0, transportId: tid }), [0x5, 0x26, 0x00]],
      ['malformed TransportID', WE, ({ a }) => a.move({ key: KA, saKey: KD, relativeTargetPort: 2, transportId: badPadding }), [0x5, 0x26, 0x00]],
      ['unsupported protocol', WE, ({ a }) => a.move({ key: KA, saKey: KD, relativeTargetPort: 2, transportId: spi }), [0x5, 0x26, 0x00]],
      ['two TransportIDs', WE, ({ a }) => a.move({ key: KA, saKey: KD, relativeTargetPort: 2, transportId: Buffer.concat([tid, fcTid('0102030405060708')]) }), [0x5, 0x26, 0x00]],
      ['TransportID length beyond the list', WE, ({ a }) => a.move({ key: KA, saKey: KD, relativeTargetPort: 2, transportId: tid, transportIdDataLength: tid.length + 4 }), [0x5, 0x26, 0x00]],
      ['TransportID length short of the list', WE, ({ a }) => a.move({ key: KA, saKey: KD, relativeTargetPort: 2, transportId: tid, transportIdDataLength: tid.length - 4 }), [0x5, 0x26, 0x00]],
      ['list shorter than 24 bytes', WE, ({ a }) => a.out(SA.REGISTER_AND_MOVE, registerAndMoveParams({ key: KA, saKey: KD, relativeTargetPort: 2, transportId: tid }).subarray(0, 20)), [0x5, 0x1a, 0x00]],
    ];

    it.each(rows)('%s (held %i)', (_name, type, command, outcome) => {
      const setup = held(type);
      const before = setup.b.in(IN.READ_FULL_STATUS).data;
      const r = command(setup);
      if (outcome === 'conflict') expectConflict(r);
      else expectCheck(r, ...outcome);
      expect(setup.b.in(IN.READ_FULL_STATUS).data, TYPE_NAMES[type]).toEqual(before);
    });

    it('no reservation is INVALID FIELD IN CDB', () => {
      const { a } = lun();
      expectGood(a.registerIgnore(KA));
      expectCheck(a.move({ key: KA, saKey: KD, relativeTargetPort: 2, transportId: tid }), 0x5, 0x24, 0x00);
      expect(a.readKeys()).toEqual({ generation: 1, additionalLength: 8, keys: [KA] });
    });

    it('a destination that does not fit is INSUFFICIENT REGISTRATION RESOURCES, unless UNREG frees room', () => {
      const { a, b } = held(WE, { targetPorts: [1, 2], maxRegistrations: 2 });
      expectCheck(a.move({ key: KA, saKey: KD, relativeTargetPort: 2, transportId: tid }), 0x5, 0x55, 0x04);
      expectGood(a.move({ key: KA, saKey: KD, relativeTargetPort: 2, transportId: tid, unreg: true }));
      expect(b.readKeys().keys).toEqual([KB, KD]);
    });
  });
});
