/**
 * The PR IN codec (src/scsi/pr-in.ts) against bytes written from the layouts
 * of spc4r17 6.13 in test/fixtures/scsi-bytes.ts: decoding (including the
 * truncation an allocation length causes), encoding, and round trips.
 */
import { describe, expect, it } from 'vitest';
import { prTypeDescription } from '../../src/scsi/pr-codes.js';
import { PrDataError } from '../../src/scsi/pr-data.js';
import {
  decodePrInCdb,
  decodePrInHeader,
  decodeReadFullStatus,
  decodeReadKeys,
  decodeReadReservation,
  decodeReportCapabilities,
  encodePrInCdb,
  encodeReadFullStatus,
  encodeReadKeys,
  encodeReadReservation,
  encodeReportCapabilities,
} from '../../src/scsi/pr-in.js';
import { initiatorName, parseInitiatorName } from '../../src/scsi/transport-id.js';
import { CDB, DATA, fullStatusData, fullStatusDescriptor, hex as bytes, IN, iscsiTid, NODE_A_TID } from '../fixtures/scsi-bytes.js';

describe('the PR IN header', () => {
  it('reads PRGENERATION and ADDITIONAL LENGTH unsigned, whatever follows', () => {
    expect(decodePrInHeader(bytes('80000001 fffffff8 00'))).toEqual({ generation: 0x80000001, additionalLength: 0xfffffff8 });
  });

  it('refuses data shorter than the header', () => {
    expect(() => decodePrInHeader(bytes('00000001 000000'))).toThrow(PrDataError);
  });
});

describe('READ KEYS (§5.2)', () => {
  // PRGENERATION 3, ADDITIONAL LENGTH 16, keys 0xaaaa and 0x1122334455667788.
  const full = bytes('00000003 00000010 000000000000aaaa 1122334455667788');

  it('decodes the generation and every key', () => {
    expect(decodeReadKeys(full)).toEqual({
      generation: 3,
      additionalLength: 16,
      keys: [0xaaaan, 0x1122334455667788n],
      announcedKeys: 2,
      truncated: false,
    });
  });

  it('no registrations', () => {
    expect(decodeReadKeys(bytes('ffffffff 00000000'))).toEqual({
      generation: 0xffffffff,
      additionalLength: 0,
      keys: [],
      announcedKeys: 0,
      truncated: false,
    });
  });

  it('reports the keys that fit and flags truncation (allocation length 20)', () => {
    const r = decodeReadKeys(full.subarray(0, 20));
    expect(r.keys).toEqual([0xaaaan]);
    expect(r.announcedKeys).toBe(2);
    expect(r.truncated).toBe(true);
  });

  it('header only, as libiscsi PrinReadKeys.Truncate asks for (allocation length 8)', () => {
    const r = decodeReadKeys(full.subarray(0, 8));
    expect(r).toMatchObject({ generation: 3, additionalLength: 16, keys: [], truncated: true });
  });

  it('ignores bytes beyond ADDITIONAL LENGTH', () => {
    const r = decodeReadKeys(Buffer.concat([bytes('00000001 00000008 0000000000000001'), Buffer.alloc(8, 0xee)]));
    expect(r.keys).toEqual([1n]);
    expect(r.truncated).toBe(false);
  });

  it('throws PrDataError when the 8-byte header does not fit', () => {
    expect(() => decodeReadKeys(bytes('00000003 0000'))).toThrow(PrDataError);
  });

  it('accepts a subarray at a non-zero offset', () => {
    const padded = Buffer.concat([Buffer.alloc(3), full]);
    expect(decodeReadKeys(padded.subarray(3)).keys).toEqual([0xaaaan, 0x1122334455667788n]);
  });
});

describe('READ RESERVATION (§5.3)', () => {
  // Generation 5, ADDITIONAL LENGTH 16, key 0xbbbb, obsolete 16-19, reserved 20, scope/type 0x03 (LU_SCOPE, EA), obsolete 22-23.
  const held = bytes('00000005 00000010 000000000000bbbb 00000000 00 03 0000');

  it('decodes a held reservation', () => {
    expect(decodeReadReservation(held)).toEqual({
      generation: 5,
      additionalLength: 16,
      reservation: { key: 0xbbbbn, scope: 0, type: 3 },
      truncated: false,
    });
  });

  it('no reservation: ADDITIONAL LENGTH 0', () => {
    expect(decodeReadReservation(bytes('00000002 00000000'))).toEqual({
      generation: 2,
      additionalLength: 0,
      reservation: null,
      truncated: false,
    });
  });

  it('all-registrants types report key 0', () => {
    const ar = bytes('00000001 00000010 0000000000000000 00000000 00 08 0000');
    expect(decodeReadReservation(ar).reservation).toEqual({ key: 0n, scope: 0, type: 8 });
  });

  it('cut after the key: key known, scope and type not', () => {
    const r = decodeReadReservation(held.subarray(0, 16));
    expect(r.reservation).toEqual({ key: 0xbbbbn, scope: null, type: null });
    expect(r.truncated).toBe(true);
  });

  it('header only: a reservation exists, nothing else is known', () => {
    const r = decodeReadReservation(held.subarray(0, 8));
    expect(r.reservation).toEqual({ key: null, scope: null, type: null });
    expect(r.truncated).toBe(true);
  });

  it('throws PrDataError without a full header', () => {
    expect(() => decodeReadReservation(Buffer.alloc(7))).toThrow(PrDataError);
  });
});

describe('REPORT CAPABILITIES (§5.4)', () => {
  it('decodes LIO-like capabilities: CRH SIP_C ATP_C PTPL_C, TMV, ALLOW 001b, PTPL_A, all six types', () => {
    // byte 2: 0x10|0x08|0x04|0x01 = 0x1d; byte 3: 0x80|0x10|0x01 = 0x91; mask EAh/01h.
    expect(decodeReportCapabilities(bytes('0008 1d 91 ea 01 0000'))).toEqual({
      length: 8,
      rlrC: false,
      crh: true,
      sipC: true,
      atpC: true,
      ptplC: true,
      tmv: true,
      allowCommands: 1,
      ptplA: true,
      typeMask: { wrEx: true, exAc: true, wrExRo: true, exAcRo: true, wrExAr: true, exAcAr: true },
      truncated: false,
    });
  });

  it('each bit on its own', () => {
    expect(decodeReportCapabilities(bytes('0008 80 00 00 00 0000'))).toMatchObject({ rlrC: true, crh: false, tmv: false, allowCommands: 0 });
    expect(decodeReportCapabilities(bytes('0008 00 40 00 00 0000')).allowCommands).toBe(4);
    expect(decodeReportCapabilities(bytes('0008 00 80 02 00 0000')).typeMask).toEqual({
      wrEx: true,
      exAc: false,
      wrExRo: false,
      exAcRo: false,
      wrExAr: false,
      exAcAr: false,
    });
    expect(decodeReportCapabilities(bytes('0008 00 80 00 01 0000')).typeMask).toMatchObject({ exAcAr: true, wrEx: false });
  });

  it('tgt-like: only TMV and the mask', () => {
    expect(decodeReportCapabilities(bytes('0008 00 80 ea 01 0000'))).toMatchObject({ crh: false, sipC: false, atpC: false, ptplC: false, tmv: true });
  });

  it('flags without the type mask when cut after byte 3', () => {
    const c = decodeReportCapabilities(bytes('0008 1d 91'));
    expect(c).toMatchObject({ crh: true, tmv: true, typeMask: null, truncated: true });
  });

  it('throws PrDataError when the flags do not fit', () => {
    expect(() => decodeReportCapabilities(bytes('0008 1d'))).toThrow(PrDataError);
  });
});

describe('READ FULL STATUS (§5.5)', () => {
  const nodeA = 'iqn.2008-11.org.linux-kvm:node-a';
  const nodeB = 'iqn.2008-11.org.linux-kvm:node-b';
  // The node names are 32 bytes: NUL-terminated and padded to 36, plus the 4-byte header = 40.
  // FC TransportID: protocol 0, N_Port name at bytes 8-15; SAS: protocol 6, address at bytes 4-11.
  const fcTid = bytes('00 000000 00000000 21000024ff5a2b3c 0000000000000000');
  const sasTid = bytes('06 000000 500605b0000272b0 000000000000000000000000');
  const data = fullStatusData(
    7,
    fullStatusDescriptor(0xaaaan, 0x01, 0x01, 1, iscsiTid(nodeA)),
    fullStatusDescriptor(0xbbbbn, 0x00, 0x00, 2, iscsiTid(nodeB)),
    fullStatusDescriptor(0xccccn, 0x02, 0x00, 0, fcTid),
    fullStatusDescriptor(0xddddn, 0x00, 0x00, 3, sasTid),
  );

  it('decodes every descriptor with its TransportID', () => {
    const s = decodeReadFullStatus(data);
    expect(s.generation).toBe(7);
    expect(s.truncated).toBe(false);
    expect(s.descriptors).toEqual([
      {
        key: 0xaaaan,
        allTgPt: false,
        rHolder: true,
        scope: 0,
        type: 1,
        relativeTargetPort: 1,
        transportIdLength: 40,
        transportId: { protocol: 'iscsi', name: nodeA, isid: null },
        transportIdError: null,
      },
      {
        key: 0xbbbbn,
        allTgPt: false,
        rHolder: false,
        scope: 0,
        type: 0,
        relativeTargetPort: 2,
        transportIdLength: 40,
        transportId: { protocol: 'iscsi', name: nodeB, isid: null },
        transportIdError: null,
      },
      {
        key: 0xccccn,
        allTgPt: true,
        rHolder: false,
        scope: 0,
        type: 0,
        relativeTargetPort: 0,
        transportIdLength: 24,
        transportId: { protocol: 'fc', wwpn: '21000024ff5a2b3c' },
        transportIdError: null,
      },
      {
        key: 0xddddn,
        allTgPt: false,
        rHolder: false,
        scope: 0,
        type: 0,
        relativeTargetPort: 3,
        transportIdLength: 24,
        transportId: { protocol: 'sas', address: '500605b0000272b0' },
        transportIdError: null,
      },
    ]);
  });

  it('no registrations', () => {
    expect(decodeReadFullStatus(fullStatusData(0))).toEqual({ generation: 0, additionalLength: 0, descriptors: [], truncated: false });
  });

  it('a descriptor whose TransportID is cut off is reported without it', () => {
    const first = fullStatusDescriptor(0xaaaan, 0x01, 0x03, 1, iscsiTid(nodeA));
    const s = decodeReadFullStatus(data.subarray(0, 8 + first.length + 24 + 4));
    expect(s.truncated).toBe(true);
    expect(s.descriptors).toHaveLength(2);
    expect(s.descriptors[1]).toMatchObject({
      key: 0xbbbbn,
      relativeTargetPort: 2,
      transportId: null,
      transportIdError: 'TransportID cut off by the allocation length',
    });
  });

  it('descriptors whose fixed part does not fit are left out', () => {
    const s = decodeReadFullStatus(data.subarray(0, 8 + 10));
    expect(s.descriptors).toEqual([]);
    expect(s.truncated).toBe(true);
  });

  it('a TransportID running past ADDITIONAL LENGTH is flagged, not read', () => {
    const d = fullStatusDescriptor(0x1n, 0, 0, 1, iscsiTid(nodeA));
    d.writeUInt32BE(200, 20);
    const s = decodeReadFullStatus(fullStatusData(1, d));
    expect(s.truncated).toBe(false);
    expect(s.descriptors[0]).toMatchObject({ transportId: null, transportIdError: 'TransportID extends beyond ADDITIONAL LENGTH' });
  });

  it('an undecodable TransportID carries the decoder error', () => {
    const s = decodeReadFullStatus(fullStatusData(1, fullStatusDescriptor(0x1n, 0, 0, 1, bytes('09000000'.padEnd(48, '0')))));
    expect(s.descriptors[0]!.transportId).toBeNull();
    expect(s.descriptors[0]!.transportIdError).toMatch(/protocol identifier 9/);
  });

  it('throws PrDataError without a full header', () => {
    expect(() => decodeReadFullStatus(Buffer.alloc(4))).toThrow(PrDataError);
  });
});

describe('names', () => {
  it('type names follow sg_persist', () => {
    expect([1, 3, 5, 6, 7, 8].map(prTypeDescription)).toEqual([
      'Write Exclusive',
      'Exclusive Access',
      'Write Exclusive, registrants only',
      'Exclusive Access, registrants only',
      'Write Exclusive, all registrants',
      'Exclusive Access, all registrants',
    ]);
    expect(prTypeDescription(2)).toBe('obsolete [0x2]');
    expect(prTypeDescription(9)).toBe('reserved [0x9]');
  });

  it.each(['iqn.2008-11.org.linux-kvm:node-a', 'iqn.2008-11.org.linux-kvm:node-a,i,0x00023d000001', 'fc.21000024ff5a2b3c', 'naa.500605b0000272b0'])(
    'initiatorName(%s) round-trips through parseInitiatorName',
    (name) => {
      expect(initiatorName(parseInitiatorName(name))).toBe(name);
    },
  );
});

describe('PR IN CDB', () => {
  it('encodes the 10 bytes, padded to the 16 QEMU sends', () => {
    expect(encodePrInCdb({ action: IN.READ_KEYS, allocationLength: 8192 }, 16)).toEqual(CDB.READ_KEYS_8192);
    expect(encodePrInCdb({ action: IN.READ_FULL_STATUS, allocationLength: 0x0102 }, 16)).toEqual(CDB.READ_FULL_STATUS_258);
    expect(encodePrInCdb({ action: IN.READ_KEYS, allocationLength: 8192 })).toEqual(CDB.READ_KEYS_8192.subarray(0, 10));
  });

  it('decodes the service action and ALLOCATION LENGTH, ignoring the bits around them', () => {
    expect(decodePrInCdb(CDB.READ_FULL_STATUS_258)).toEqual({ action: IN.READ_FULL_STATUS, allocationLength: 0x0102 });
    const noisy = Buffer.from(CDB.READ_KEYS_8192);
    noisy[1] = 0xe0 | IN.READ_RESERVATION;
    noisy.fill(0xff, 2, 7);
    expect(decodePrInCdb(noisy)).toEqual({ action: IN.READ_RESERVATION, allocationLength: 8192 });
  });

  it('refuses what does not fit its fields', () => {
    expect(() => encodePrInCdb({ action: 0x20, allocationLength: 0 })).toThrow(RangeError);
    expect(() => encodePrInCdb({ action: 0, allocationLength: 0x10000 })).toThrow(RangeError);
    expect(() => encodePrInCdb({ action: 0, allocationLength: 0 }, 6)).toThrow(RangeError);
    expect(() => decodePrInCdb(CDB.READ_KEYS_8192.subarray(0, 9))).toThrow(PrDataError);
  });
});

describe('encoding PR IN data', () => {
  it('READ KEYS', () => {
    expect(encodeReadKeys({ generation: 3, keys: [0xaan, 0xbbn] })).toEqual(DATA.READ_KEYS_AA_BB);
    expect(encodeReadKeys({ generation: 0, keys: [] })).toEqual(DATA.READ_KEYS_NONE);
  });

  it('READ RESERVATION', () => {
    expect(encodeReadReservation({ generation: 7, reservation: { key: 0xbbn, scope: 0, type: 5 } })).toEqual(DATA.READ_RESERVATION_BB_WE_RO);
    expect(encodeReadReservation({ generation: 7, reservation: null })).toEqual(DATA.READ_RESERVATION_NONE);
    expect(() => encodeReadReservation({ generation: 7, reservation: { key: 1n, scope: 0, type: 16 } })).toThrow(RangeError);
  });

  it('REPORT CAPABILITIES', () => {
    const everyType = { wrEx: true, exAc: true, wrExRo: true, exAcRo: true, wrExAr: true, exAcAr: true };
    const c = { rlrC: false, crh: true, sipC: true, atpC: true, ptplC: true, tmv: true, allowCommands: 4, ptplA: true, typeMask: everyType };
    expect(encodeReportCapabilities(c)).toEqual(DATA.CAPABILITIES_ALL_PTPL_A);
    const none = { wrEx: false, exAc: false, wrExRo: false, exAcRo: false, wrExAr: false, exAcAr: false };
    const rlr = { ...c, rlrC: true, crh: false, sipC: false, atpC: false, ptplC: false, tmv: false, allowCommands: 0, ptplA: false, typeMask: none };
    expect(encodeReportCapabilities(rlr)).toEqual(bytes('0008 80 00 0000 0000'));
    expect(() => encodeReportCapabilities({ ...c, allowCommands: 8 })).toThrow(RangeError);
  });

  it('READ FULL STATUS', () => {
    const holder = { key: 0xaan, allTgPt: false, rHolder: true, scope: 0, type: 1, relativeTargetPort: 1 };
    const transportId = { protocol: 'iscsi', name: 'iqn.2008-11.org.linux-kvm:node-a', isid: null } as const;
    expect(encodeReadFullStatus({ generation: 2, descriptors: [{ ...holder, transportId }] })).toEqual(DATA.FULL_STATUS_NODE_A_HOLDER);
    expect(encodeReadFullStatus({ generation: 0, descriptors: [] })).toEqual(fullStatusData(0));
  });
});

describe('PR IN round trips', () => {
  it.each([
    ['READ KEYS', DATA.READ_KEYS_AA_BB],
    ['READ KEYS, none', DATA.READ_KEYS_NONE],
  ])('%s: encode(decode(bytes)) is the bytes', (_name, data) => {
    expect(encodeReadKeys(decodeReadKeys(data))).toEqual(data);
  });

  it.each([
    ['held', DATA.READ_RESERVATION_BB_WE_RO],
    ['none', DATA.READ_RESERVATION_NONE],
  ])('READ RESERVATION, %s', (_name, data) => {
    const { generation, reservation } = decodeReadReservation(data);
    const complete = reservation === null ? null : { key: reservation.key!, scope: reservation.scope!, type: reservation.type! };
    expect(encodeReadReservation({ generation, reservation: complete })).toEqual(data);
  });

  it('REPORT CAPABILITIES', () => {
    const c = decodeReportCapabilities(DATA.CAPABILITIES_ALL_PTPL_A);
    expect(encodeReportCapabilities({ ...c, typeMask: c.typeMask! })).toEqual(DATA.CAPABILITIES_ALL_PTPL_A);
  });

  it('READ FULL STATUS', () => {
    const s = decodeReadFullStatus(DATA.FULL_STATUS_NODE_A_HOLDER);
    const descriptors = s.descriptors.map((d) => ({ ...d, transportId: d.transportId! }));
    expect(encodeReadFullStatus({ generation: s.generation, descriptors })).toEqual(DATA.FULL_STATUS_NODE_A_HOLDER);
    expect(s.descriptors[0]!.transportIdLength).toBe(NODE_A_TID.length);
  });

  it('decode(encode(reply)) keeps every field', () => {
    const descriptors = [
      { key: 0xaan, allTgPt: true, rHolder: false, scope: 0, type: 0, relativeTargetPort: 2, transportId: parseInitiatorName('fc.21000024ff5a2b3c') },
      { key: 0xbbn, allTgPt: false, rHolder: true, scope: 0, type: 8, relativeTargetPort: 3, transportId: parseInitiatorName('naa.500605b0000272b0') },
    ];
    const decoded = decodeReadFullStatus(encodeReadFullStatus({ generation: 0xffffffff, descriptors }));
    expect(decoded).toMatchObject({ generation: 0xffffffff, truncated: false });
    expect(decoded.descriptors.map(({ transportIdLength: _l, transportIdError: _e, ...rest }) => rest)).toEqual(descriptors);
  });
});
