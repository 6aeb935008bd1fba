import { describe, expect, it } from 'vitest';
import { decodeResponseHeader, encodeHandshake, encodeResponse } from '../../src/protocol/response.js';
import { fixedSense, Sense } from '../../src/scsi/sense.js';
import { hex } from '../fixtures/scsi-bytes.js';
import { REPLY_IO_PROCESS_TERMINATED } from './fixtures.js';

const prIn = (transferLength: number) => ({ direction: 'in' as const, transferLength });
const prOut = (transferLength: number) => ({ direction: 'out' as const, transferLength });

describe('response serializer', () => {
  it('writes the handshake as a big-endian u32', () => {
    expect(encodeHandshake(0)).toEqual(hex('00000000'));
    expect(encodeHandshake(0x01020304)).toEqual(hex('01020304'));
  });

  it('writes status, size 0 and the fixed sense zero-filled to 96 bytes', () => {
    const reply = encodeResponse(prIn(8192), { status: 2, sense: fixedSense(Sense.IO_PROCESS_TERMINATED) });
    expect(reply).toEqual(REPLY_IO_PROCESS_TERMINATED);
  });

  it('appends PR IN data on GOOD, truncated to the allocation length', () => {
    const data = hex('00 00 00 01 00 00 00 08 00 00 00 00 00 00 bb bb');
    const full = encodeResponse(prIn(8192), { status: 0, data });
    expect(full.length).toBe(104 + 16);
    expect(full.subarray(0, 8)).toEqual(hex('00000000 00000010'));
    expect(full.subarray(104)).toEqual(data);
    const cut = encodeResponse(prIn(8), { status: 0, data });
    expect(cut.subarray(4, 8)).toEqual(hex('00000008'));
    expect(cut.subarray(104)).toEqual(data.subarray(0, 8));
  });

  it('never sends data QEMU would assert on: PR OUT, or a status other than GOOD', () => {
    expect(encodeResponse(prOut(24), { status: 0, data: Buffer.alloc(8) }).length).toBe(104);
    expect(encodeResponse(prIn(8192), { status: 0x18, data: Buffer.alloc(8) }).readInt32BE(4)).toBe(0);
  });

  it('caps data at 8192 bytes', () => {
    expect(encodeResponse(prIn(8192), { status: 0, data: Buffer.alloc(9000) }).readInt32BE(4)).toBe(8192);
  });

  it('decodes its own header', () => {
    const header = decodeResponseHeader(REPLY_IO_PROCESS_TERMINATED);
    expect(header.status).toBe(2);
    expect(header.size).toBe(0);
    expect(header.sense.subarray(0, 18)).toEqual(hex('70 00 0b 00 00 00 00 0a 00 00 00 00 00 06 00 00 00 00'));
  });
});
