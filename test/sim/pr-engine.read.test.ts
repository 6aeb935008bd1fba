import { describe, expect, it } from 'vitest';
import {
  ALL_TYPES,
  EA,
  EA_AR,
  expectCheck,
  expectGood,
  fc,
  hex,
  IN,
  Initiator,
  iscsi,
  iscsiTid,
  lun,
  nexus,
  NODE_A,
  NODE_B,
  sas,
  WE_AR,
  WE_RO,
} from './helpers.js';
import { prInCdb } from '../fixtures/scsi-bytes.js';

const KA = 0x1122334455667788n;
const KB = 0xb2n;

/** a (port 1) registered with KA, b (port 2) with KB: generation 2. */
function twoRegistered(): { a: Initiator; b: Initiator; c: Initiator } {
  const { a, c, on } = lun();
  const b = on(NODE_B, 2);
  expectGood(a.registerIgnore(KA));
  expectGood(b.registerIgnore(KB));
  return { a, b, c };
}

describe('READ KEYS (§5.2)', () => {
  it('reports generation, full ADDITIONAL LENGTH and keys in registration order', () => {
    const { c } = twoRegistered();
    const r = c.in(IN.READ_KEYS);
    expectGood(r);
    expect(r.data).toEqual(hex('00000002 00000010 1122334455667788 00000000000000b2'));
    expect(r.persistentStateChanged).toBe(false);
  });

  it('reports an empty list', () => {
    const { a } = lun();
    expect(a.in(IN.READ_KEYS).data).toEqual(hex('00000000 00000000'));
  });

  it.each([
    [0, ''],
    [4, '00000002'],
    [8, '00000002 00000010'],
    [12, '00000002 00000010 11223344'],
    [23, '00000002 00000010 1122334455667788 00000000000000'],
    [24, '00000002 00000010 1122334455667788 00000000000000b2'],
    [1000, '00000002 00000010 1122334455667788 00000000000000b2'],
  ])('truncates to allocation length %i without error (libiscsi PrinReadKeys.Truncate)', (allocation, bytes) => {
    const { c } = twoRegistered();
    const r = c.in(IN.READ_KEYS, allocation);
    expectGood(r);
    expect(r.data).toEqual(hex(bytes));
  });
});

describe('READ RESERVATION (§5.3)', () => {
  it('reports no reservation with ADDITIONAL LENGTH 0', () => {
    const { c } = twoRegistered();
    expect(c.in(IN.READ_RESERVATION).data).toEqual(hex('00000002 00000000'));
  });

  it("reports the holder's key, scope and type", () => {
    const { a, c } = twoRegistered();
    expectGood(a.reserve(KA, WE_RO));
    expect(c.in(IN.READ_RESERVATION).data).toEqual(
      hex('00000002 00000010 1122334455667788 00000000 00 05 0000'),
    );
  });

  it.each([
    [WE_AR, '07'],
    [EA_AR, '08'],
  ])('reports key 0 for all-registrants type %i', (type, typeByte) => {
    const { a, b } = twoRegistered();
    expectGood(b.reserve(KB, type));
    expect(a.in(IN.READ_RESERVATION).data).toEqual(hex(`00000002 00000010 0000000000000000 00000000 00 ${typeByte} 0000`));
  });

  it.each([
    [8, '00000002 00000010'],
    [16, '00000002 00000010 1122334455667788'],
    [22, '00000002 00000010 1122334455667788 00000000 00 03'],
  ])('truncates to allocation length %i', (allocation, bytes) => {
    const { a } = twoRegistered();
    expectGood(a.reserve(KA, EA));
    expect(a.in(IN.READ_RESERVATION, allocation).data).toEqual(hex(bytes));
  });
});

describe('REPORT CAPABILITIES (§5.4)', () => {
  // LENGTH 8; byte 2 CRH(10h) SIP_C(08h) ATP_C(04h) PTPL_C(01h); byte 3 TMV(80h),
  // ALLOW COMMANDS 100b (40h), PTPL_A; type mask EAh 01h (all six types).
  it('reports every implemented capability and all six types', () => {
    const { a } = lun();
    expect(a.in(IN.REPORT_CAPABILITIES).data).toEqual(hex('0008 1d c0 ea 01 0000'));
  });

  it('sets PTPL_A while APTPL is active', () => {
    const { a } = lun();
    expectGood(a.registerIgnore(KA, { aptpl: true }));
    expect(a.in(IN.REPORT_CAPABILITIES).data).toEqual(hex('0008 1d c1 ea 01 0000'));
  });

  it('truncates to the allocation length', () => {
    const { a } = lun();
    expect(a.in(IN.REPORT_CAPABILITIES, 4).data).toEqual(hex('0008 1d c0'));
  });

  it('every type in the mask can be reserved, read back and released (libiscsi PrinReportCapabilities)', () => {
    const { a } = lun();
    expectGood(a.registerIgnore(KA));
    const mask = a.in(IN.REPORT_CAPABILITIES).data.readUInt16BE(4);
    const bits: [number, number][] = [[1, 0x0200], [3, 0x0800], [5, 0x2000], [6, 0x4000], [7, 0x8000], [8, 0x0001]];
    for (const [type, bit] of bits) {
      expect(mask & bit).toBe(bit);
      expectGood(a.reserve(KA, type));
      expect(a.readReservation().reservation?.type).toBe(type);
      expectGood(a.release(KA, type));
    }
  });
});

describe('READ FULL STATUS (§5.5)', () => {
  it('describes every registration with key, R_HOLDER, scope/type, RTPI and TransportID', () => {
    const { a, c } = twoRegistered();
    expectGood(a.reserve(KA, WE_RO));
    const r = c.in(IN.READ_FULL_STATUS);
    expectGood(r);
    // iSCSI TransportIDs (§2.4): the 32-byte names get a NUL and pad to 36, so 40 bytes each.
    const nameA = Buffer.from(NODE_A).toString('hex');
    const nameB = Buffer.from(NODE_B).toString('hex');
    expect(r.data).toEqual(
      hex(
        '00000002 00000080' +
          // key, reserved, R_HOLDER=1, scope 0 type 5, reserved, RTPI 1, descriptor length 40
          '1122334455667788 00000000 01 05 00000000 0001 00000028' +
          `05 00 0024 ${nameA} 00000000` +
          '00000000000000b2 00000000 00 00 00000000 0002 00000028' +
          `05 00 0024 ${nameB} 00000000`,
      ),
    );
  });

  it('marks every registrant as holder under the all-registrants types', () => {
    const { b, c } = twoRegistered();
    expectGood(b.reserve(KB, EA_AR));
    const data = c.in(IN.READ_FULL_STATUS).data;
    expect(data.subarray(8 + 12, 8 + 14)).toEqual(hex('01 08'));
    expect(data.subarray(8 + 64 + 12, 8 + 64 + 14)).toEqual(hex('01 08'));
  });

  it('reports an empty list', () => {
    const { a } = lun();
    expect(a.in(IN.READ_FULL_STATUS).data).toEqual(hex('00000000 00000000'));
  });

  it('sets ALL_TG_PT on each I_T nexus of an ALL_TG_PT registration', () => {
    const { a } = lun();
    expectGood(a.registerIgnore(KA, { allTgPt: true }));
    const data = a.in(IN.READ_FULL_STATUS).data;
    const descriptor = 24 + iscsiTid(NODE_A).length;
    expect(data.readUInt32BE(4)).toBe(2 * descriptor);
    expect(data.subarray(8 + 12, 8 + 20)).toEqual(hex('02 00 00000000 0001'));
    expect(data.subarray(8 + descriptor + 12, 8 + descriptor + 20)).toEqual(hex('02 00 00000000 0002'));
  });

  it('encodes FC, SAS and iSCSI port-name TransportIDs', () => {
    const { engine, c } = lun();
    const initiators = [fc('21000024ff5a2b3c'), sas('500605b0000272b0'), iscsi('iqn.x', '00023d000001')];
    initiators.forEach((initiator, i) => expectGood(new Initiator(engine, nexus(initiator)).registerIgnore(BigInt(i + 1))));
    const data = c.in(IN.READ_FULL_STATUS).data;
    const fcDescriptor = '0000000000000001 00000000 00 00 00000000 0001 00000018' + '00 000000 00000000 21000024ff5a2b3c 0000000000000000';
    const sasDescriptor = '0000000000000002 00000000 00 00 00000000 0001 00000018' + '06 000000 500605b0000272b0 000000000000000000000000';
    // "iqn.x,i,0x00023d000001" is 22 bytes + NUL -> 24 (descriptor 52); FC and SAS descriptors are 48.
    const isidName = Buffer.from('iqn.x,i,0x00023d000001').toString('hex');
    const iscsiDescriptor = `0000000000000003 00000000 00 00 00000000 0001 0000001c 45 00 0018 ${isidName} 0000`;
    expect(data).toEqual(hex(`00000003 00000094 ${fcDescriptor} ${sasDescriptor} ${iscsiDescriptor}`));
  });

  it('keeps the full ADDITIONAL LENGTH when truncated', () => {
    const { c } = twoRegistered();
    const r = c.in(IN.READ_FULL_STATUS, 100);
    expectGood(r);
    expect(r.data.length).toBe(100);
    expect(r.data.readUInt32BE(4)).toBe(128);
  });
});

describe('PR IN service actions and access (§5.1, §6.2)', () => {
  it.each([0, 1, 2, 3])('service action %i completes GOOD', (action) => {
    const { a } = lun();
    expectGood(a.in(action));
  });

  it.each([4, 5, 0x10, 0x1f])('service action %i is INVALID FIELD IN CDB (libiscsi PrinServiceactionRange)', (action) => {
    const { a } = lun();
    expectCheck(a.in(action), 0x5, 0x24, 0x00);
  });

  it.each(ALL_TYPES)('is allowed for an unregistered nexus under type %i', (type) => {
    const { a, c } = twoRegistered();
    expectGood(a.reserve(KA, type));
    for (const action of [0, 1, 2, 3]) expectGood(c.in(action));
  });

  it('uses only bytes 7-8 as allocation length', () => {
    const { engine, a } = lun();
    const cdb = prInCdb(IN.REPORT_CAPABILITIES, 2);
    cdb.fill(0xff, 2, 7);
    cdb.fill(0xff, 10);
    expect(engine.execute(a.nexus, cdb, Buffer.alloc(0)).data).toEqual(hex('0008'));
  });
});
