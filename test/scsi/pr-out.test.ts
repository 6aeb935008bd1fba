/**
 * The PR OUT codec (src/scsi/pr-out.ts) against bytes written from the
 * layouts of spc4r17 6.14 in test/fixtures/scsi-bytes.ts: the CDB, the basic
 * and the REGISTER AND MOVE parameter lists both ways, and the length checks.
 */
import { describe, expect, it } from 'vitest';
import { PrDataError } from '../../src/scsi/pr-data.js';
import {
  basicParametersProblem,
  decodeBasicParameters,
  decodePrOutCdb,
  decodeRegisterAndMoveParameters,
  encodeBasicParameters,
  encodePrOutCdb,
  encodeRegisterAndMoveParameters,
  registerAndMoveParametersProblem,
} from '../../src/scsi/pr-out.js';
import { decodeTransportIdList } from '../../src/scsi/transport-id.js';
import { basicParams, CDB, EA_AR, fcTid, iscsiTid, NODE_A_TID, PARAMS, registerAndMoveParams, SA, WE_RO } from '../fixtures/scsi-bytes.js';

const NODE_A = 'iqn.2008-11.org.linux-kvm:node-a';

describe('PR OUT CDB', () => {
  it.each([
    ['REGISTER', CDB.REGISTER_24, { action: SA.REGISTER, scope: 0, type: 0, parameterListLength: 24 }],
    ['RESERVE WE-RO', CDB.RESERVE_WE_RO_24, { action: SA.RESERVE, scope: 0, type: WE_RO, parameterListLength: 24 }],
    [
      'PREEMPT AND ABORT, SCOPE 1, EA-AR, a 32-bit length',
      CDB.PREEMPT_AND_ABORT_SCOPE1_EA_AR_65560,
      { action: SA.PREEMPT_AND_ABORT, scope: 1, type: EA_AR, parameterListLength: 0x10018 },
    ],
  ])('%s', (_name, bytes, fields) => {
    expect(decodePrOutCdb(bytes)).toEqual(fields);
    expect(encodePrOutCdb(fields, bytes.length)).toEqual(bytes);
  });

  it('10 bytes unless asked for more; SCOPE defaults to LU_SCOPE and TYPE to 0', () => {
    expect(encodePrOutCdb({ action: SA.REGISTER, parameterListLength: 24 })).toEqual(CDB.REGISTER_24.subarray(0, 10));
    expect(encodePrOutCdb({ action: SA.REGISTER, parameterListLength: 0x10018 }, 16)).toEqual(CDB.REGISTER_65560);
  });

  it('decoding ignores the reserved bits above the service action', () => {
    const noisy = Buffer.from(CDB.REGISTER_24);
    noisy[1] = 0xe0 | SA.CLEAR;
    expect(decodePrOutCdb(noisy)).toMatchObject({ action: SA.CLEAR });
  });

  it('refuses what does not fit its fields', () => {
    expect(() => encodePrOutCdb({ action: 0x20, parameterListLength: 24 })).toThrow(RangeError);
    expect(() => encodePrOutCdb({ action: SA.RESERVE, type: 16, parameterListLength: 24 })).toThrow(/TYPE 16/);
    expect(() => encodePrOutCdb({ action: SA.RESERVE, scope: -1, parameterListLength: 24 })).toThrow(/SCOPE -1/);
    expect(() => encodePrOutCdb({ action: SA.RESERVE, parameterListLength: 2 ** 32 })).toThrow(RangeError);
    expect(() => decodePrOutCdb(CDB.REGISTER_24.subarray(0, 9))).toThrow(PrDataError);
  });
});

describe('basic parameter list', () => {
  it.each([
    ['REGISTER, SARK 0xaa, APTPL', PARAMS.REGISTER_SARK_AA_APTPL, { serviceActionKey: 0xaan, aptpl: true }],
    ['RK 0x0102030405060708, ALL_TG_PT', PARAMS.RK_0102030405060708_ALL_TG_PT, { reservationKey: 0x0102030405060708n, allTgPt: true }],
    ['SPEC_I_PT naming node A', PARAMS.REGISTER_SPEC_I_PT_NODE_A, { serviceActionKey: 0xbbn, specIPt: true, transportIdData: NODE_A_TID }],
  ])('%s: encodes, decodes, round-trips', (_name, bytes, fields) => {
    expect(encodeBasicParameters(fields)).toEqual(bytes);
    const decoded = decodeBasicParameters(bytes);
    expect(decoded).toEqual({
      reservationKey: 0n,
      serviceActionKey: 0n,
      specIPt: false,
      allTgPt: false,
      aptpl: false,
      transportIdData: Buffer.alloc(0),
      ...fields,
    });
    expect(encodeBasicParameters(decoded)).toEqual(bytes);
    expect(basicParametersProblem(bytes)).toBeNull();
  });

  it('the SPEC_I_PT data splits into the TransportIDs it carries', () => {
    const list = basicParams({ saKey: 1n, specIPt: true, transportIds: [iscsiTid(NODE_A), fcTid('21000024ff5a2b3c')] });
    expect(decodeTransportIdList(decodeBasicParameters(list).transportIdData)).toEqual({
      ok: true,
      value: [
        { protocol: 'iscsi', name: NODE_A, isid: null },
        { protocol: 'fc', wwpn: '21000024ff5a2b3c' },
      ],
    });
    expect(decodeTransportIdList(NODE_A_TID.subarray(0, 30))).toMatchObject({ ok: false });
  });

  it('refuses TransportIDs without SPEC_I_PT and keys beyond 64 bits', () => {
    expect(() => encodeBasicParameters({ transportIdData: NODE_A_TID })).toThrow(/SPEC_I_PT/);
    expect(() => encodeBasicParameters({ reservationKey: 2n ** 64n })).toThrow(RangeError);
  });

  it.each([
    ['shorter than 24 bytes', basicParams({ key: 1n }).subarray(0, 23), 'short'],
    ['more than 24 bytes without SPEC_I_PT', Buffer.concat([basicParams({ key: 1n }), Buffer.alloc(1)]), 'excess'],
    ['SPEC_I_PT but shorter than 28 bytes', basicParams({ specIPt: true }).subarray(0, 26), 'short'],
    ['TRANSPORTID PARAMETER DATA LENGTH beyond the list', basicParams({ specIPt: true, transportIds: [NODE_A_TID], transportIdDataLength: 44 }), 'transport-id-length'],
    ['TRANSPORTID PARAMETER DATA LENGTH short of the list', basicParams({ specIPt: true, transportIds: [NODE_A_TID], transportIdDataLength: 36 }), 'transport-id-length'],
  ])('%s: %s', (_name, bytes, kind) => {
    const problem = basicParametersProblem(bytes);
    expect(problem?.kind).toBe(kind);
    expect(problem?.message).toMatch(/^[^\n]+$/);
  });

  it('decodes the fixed fields of an inconsistent list, as a multipath map forwards it', () => {
    const list = basicParams({ key: 7n, saKey: 8n, specIPt: true, transportIds: [NODE_A_TID], transportIdDataLength: 400 });
    expect(decodeBasicParameters(list)).toMatchObject({ reservationKey: 7n, serviceActionKey: 8n, specIPt: true, transportIdData: NODE_A_TID });
    expect(decodeBasicParameters(basicParams({ specIPt: true }).subarray(0, 24)).transportIdData).toEqual(Buffer.alloc(0));
    expect(() => decodeBasicParameters(Buffer.alloc(23))).toThrow(PrDataError);
  });
});

describe('REGISTER AND MOVE parameter list', () => {
  const fields = { reservationKey: 0xaan, serviceActionKey: 0xbbn, unreg: true, aptpl: true, relativeTargetPort: 2, transportId: NODE_A_TID };

  it('encodes, decodes, round-trips', () => {
    const bytes = PARAMS.MOVE_TO_NODE_A_PORT_2_UNREG_APTPL;
    expect(encodeRegisterAndMoveParameters(fields)).toEqual(bytes);
    expect(decodeRegisterAndMoveParameters(bytes)).toEqual(fields);
    expect(encodeRegisterAndMoveParameters(decodeRegisterAndMoveParameters(bytes))).toEqual(bytes);
    expect(registerAndMoveParametersProblem(bytes)).toBeNull();
  });

  it('absent keys are 0 and absent flags clear', () => {
    const bytes = encodeRegisterAndMoveParameters({ relativeTargetPort: 1, transportId: NODE_A_TID });
    expect(bytes).toEqual(registerAndMoveParams({ key: 0n, saKey: 0n, relativeTargetPort: 1, transportId: NODE_A_TID }));
  });

  it.each([
    ['shorter than its header', PARAMS.MOVE_TO_NODE_A_PORT_2_UNREG_APTPL.subarray(0, 20), 'short'],
    ['TransportID length beyond the list', registerAndMoveParams({ key: 1n, saKey: 2n, relativeTargetPort: 1, transportId: NODE_A_TID, transportIdDataLength: 44 }), 'transport-id-length'],
    ['TransportID length short of the list', registerAndMoveParams({ key: 1n, saKey: 2n, relativeTargetPort: 1, transportId: NODE_A_TID, transportIdDataLength: 36 }), 'transport-id-length'],
  ])('%s: %s', (_name, bytes, kind) => {
    expect(registerAndMoveParametersProblem(bytes)?.kind).toBe(kind);
  });

  it('decodes the header of an inconsistent list and what TransportID bytes there are', () => {
    const list = registerAndMoveParams({ key: 1n, saKey: 2n, relativeTargetPort: 9, transportId: NODE_A_TID, transportIdDataLength: 400 });
    expect(decodeRegisterAndMoveParameters(list)).toMatchObject({ relativeTargetPort: 9, transportId: NODE_A_TID });
    expect(() => decodeRegisterAndMoveParameters(Buffer.alloc(20))).toThrow(PrDataError);
  });
});
