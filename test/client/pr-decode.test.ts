/**
 * Byte fixtures written from the layouts in spc4-pr-semantics.md §5.2-5.5
 * (and §2.4 for TransportIDs), independently of the simulator's encoder.
 */
import { describe, expect, it } from 'vitest';
import {
  decodeCapabilities,
  decodeFullStatus,
  decodeReadKeys,
  decodeReadReservation,
  initiatorName,
  PrDataError,
  typeName,
} from '../../src/client/pr-decode.js';
import { parseInitiatorName } from '../../src/sim/transport-id.js';

const bytes = (hex: string): Buffer => Buffer.from(hex.replace(/\s+/g, ''), 'hex');

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
    expect(decodeCapabilities(bytes('0008 1d 91 ea 01 0000'))).toEqual({
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
    expect(decodeCapabilities(bytes('0008 80 00 00 00 0000'))).toMatchObject({ rlrC: true, crh: false, tmv: false, allowCommands: 0 });
    expect(decodeCapabilities(bytes('0008 00 40 00 00 0000')).allowCommands).toBe(4);
    expect(decodeCapabilities(bytes('0008 00 80 02 00 0000')).typeMask).toEqual({
      wrEx: true,
      exAc: false,
      wrExRo: false,
      exAcRo: false,
      wrExAr: false,
      exAcAr: false,
    });
    expect(decodeCapabilities(bytes('0008 00 80 00 01 0000')).typeMask).toMatchObject({ exAcAr: true, wrEx: false });
  });

  it('tgt-like: only TMV and the mask', () => {
    expect(decodeCapabilities(bytes('0008 00 80 ea 01 0000'))).toMatchObject({ crh: false, sipC: false, atpC: false, ptplC: false, tmv: true });
  });

  it('flags without the type mask when cut after byte 3', () => {
    const c = decodeCapabilities(bytes('0008 1d 91'));
    expect(c).toMatchObject({ crh: true, tmv: true, typeMask: null, truncated: true });
  });

  it('throws PrDataError when the flags do not fit', () => {
    expect(() => decodeCapabilities(bytes('0008 1d'))).toThrow(PrDataError);
  });
});

/** iSCSI TransportID, format 00b: byte 0 = 0x05, bytes 2-3 ADDITIONAL LENGTH, NUL-padded name (§2.4). */
function iscsiTid(name: string): Buffer {
  const padded = Math.max(20, Math.ceil((name.length + 1) / 4) * 4);
  const out = Buffer.alloc(4 + padded);
  out[0] = 0x05;
  out.writeUInt16BE(padded, 2);
  out.write(name, 4, 'utf8');
  return out;
}

function descriptor(key: string, flags: number, scopeType: number, rtpi: number, tid: Buffer): Buffer {
  const d = Buffer.alloc(24);
  bytes(key).copy(d, 0);
  d[12] = flags;
  d[13] = scopeType;
  d.writeUInt16BE(rtpi, 18);
  d.writeUInt32BE(tid.length, 20);
  return Buffer.concat([d, tid]);
}

function fullStatus(generation: number, ...descriptors: Buffer[]): Buffer {
  const body = Buffer.concat(descriptors);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(generation, 0);
  head.writeUInt32BE(body.length, 4);
  return Buffer.concat([head, body]);
}

describe('READ FULL STATUS (§5.5)', () => {
  const nodeA = 'iqn.2008-11.org.linux-kvm:node-a';
  const nodeB = 'iqn.2008-11.org.linux-kvm:node-b';
  // The node names are 32 bytes: NUL-terminated and padded to 36, plus the 4-byte header = 40.
  // FC TransportID: protocol 0, N_Port name at bytes 8-15; SAS: protocol 6, address at bytes 4-11.
  const fcTid = bytes('00 000000 00000000 21000024ff5a2b3c 0000000000000000');
  const sasTid = bytes('06 000000 500605b0000272b0 000000000000000000000000');
  const data = fullStatus(
    7,
    descriptor('000000000000aaaa', 0x01, 0x01, 1, iscsiTid(nodeA)),
    descriptor('000000000000bbbb', 0x00, 0x00, 2, iscsiTid(nodeB)),
    descriptor('000000000000cccc', 0x02, 0x00, 0, fcTid),
    descriptor('000000000000dddd', 0x00, 0x00, 3, sasTid),
  );

  it('decodes every descriptor with its TransportID', () => {
    const s = decodeFullStatus(data);
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
    expect(decodeFullStatus(fullStatus(0))).toEqual({ generation: 0, additionalLength: 0, descriptors: [], truncated: false });
  });

  it('a descriptor whose TransportID is cut off is reported without it', () => {
    const first = descriptor('000000000000aaaa', 0x01, 0x03, 1, iscsiTid(nodeA));
    const s = decodeFullStatus(data.subarray(0, 8 + first.length + 24 + 4));
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
    const s = decodeFullStatus(data.subarray(0, 8 + 10));
    expect(s.descriptors).toEqual([]);
    expect(s.truncated).toBe(true);
  });

  it('a TransportID running past ADDITIONAL LENGTH is flagged, not read', () => {
    const d = descriptor('0000000000000001', 0, 0, 1, iscsiTid(nodeA));
    d.writeUInt32BE(200, 20);
    const s = decodeFullStatus(fullStatus(1, d));
    expect(s.truncated).toBe(false);
    expect(s.descriptors[0]).toMatchObject({ transportId: null, transportIdError: 'TransportID extends beyond ADDITIONAL LENGTH' });
  });

  it('an undecodable TransportID carries the decoder error', () => {
    const s = decodeFullStatus(fullStatus(1, descriptor('0000000000000001', 0, 0, 1, bytes('09000000'.padEnd(48, '0')))));
    expect(s.descriptors[0]!.transportId).toBeNull();
    expect(s.descriptors[0]!.transportIdError).toMatch(/protocol identifier 9/);
  });

  it('throws PrDataError without a full header', () => {
    expect(() => decodeFullStatus(Buffer.alloc(4))).toThrow(PrDataError);
  });
});

describe('names', () => {
  it('type names follow sg_persist', () => {
    expect([1, 3, 5, 6, 7, 8].map(typeName)).toEqual([
      'Write Exclusive',
      'Exclusive Access',
      'Write Exclusive, registrants only',
      'Exclusive Access, registrants only',
      'Write Exclusive, all registrants',
      'Exclusive Access, all registrants',
    ]);
    expect(typeName(2)).toBe('obsolete [0x2]');
    expect(typeName(9)).toBe('reserved [0x9]');
  });

  it.each(['iqn.2008-11.org.linux-kvm:node-a', 'iqn.2008-11.org.linux-kvm:node-a,i,0x00023d000001', 'fc.21000024ff5a2b3c', 'naa.500605b0000272b0'])(
    'initiatorName(%s) round-trips through parseInitiatorName',
    (name) => {
      expect(initiatorName(parseInitiatorName(name))).toBe(name);
    },
  );
});
