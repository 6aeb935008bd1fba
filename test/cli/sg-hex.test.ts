import { describe, expect, it } from 'vitest';
import { formatPrInHex } from '../../src/cli/sg-persist-command.js';
import { sgHexDump } from '../../src/cli/sg-hex.js';
import { PrInAction } from '../../src/scsi/pr-codes.js';
import { encodeReadKeys } from '../../src/scsi/pr-in.js';

/* The layout of libsgutils2's dStrHexFp, which sg_persist --hex prints. */
const bytes = (n: number, from = 0): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (from + i) & 0xff));

describe('sgHexDump', () => {
  it('prints 16 bytes a line with a gap after the 8th, offsets in column 1, bytes from column 8', () => {
    expect(sgHexDump(bytes(20), true)).toBe(
      ' 00     00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f\n' +
      ' 10     10 11 12 13\n',
    );
  });

  it('drops the offsets when asked (sg3_utils no_ascii < 0)', () => {
    expect(sgHexDump(bytes(9, 0xf8), false)).toBe('f8 f9 fa fb fc fd fe ff  00\n');
  });

  it('widens the offset past 0xff without moving the bytes', () => {
    const line = sgHexDump(bytes(0x101), true).split('\n').at(-2);
    expect(line).toBe(' 100    00');
  });

  it('prints nothing for no bytes', () => {
    expect(sgHexDump(Buffer.alloc(0), true)).toBe('');
  });
});

describe('formatPrInHex', () => {
  const twoKeys = encodeReadKeys({ generation: 3, keys: [0xaan, 0x1122334455667788n] });

  it('-H: the header decoded, then the rest in hex', () => {
    expect(formatPrInHex(PrInAction.READ_KEYS, twoKeys, 1, 8192)).toEqual({
      out: '  PR generation=0x3, Additional length=16\n 00     00 00 00 00 00 00 00 aa  11 22 33 44 55 66 77 88\n',
      malformed: false,
    });
  });

  it('-H with nothing registered says the length twice, as sg_persist does', () => {
    const none = encodeReadKeys({ generation: 0, keys: [] });
    expect(formatPrInHex(PrInAction.READ_KEYS, none, 1, 8192).out).toBe('  PR generation=0x0, Additional length=0\nAdditional length=0\n');
  });

  it('-H with a truncated reply dumps the allocation length, zeros where nothing came', () => {
    const out = formatPrInHex(PrInAction.READ_KEYS, twoKeys.subarray(0, 12), 1, 16).out;
    expect(out).toBe('  PR generation=0x3, Additional length too large=16, truncate\n 00     00 00 00 00 00 00 00 00\n');
  });

  it('-H with an allocation length of 4 to 7 shows PRGENERATION but not ADDITIONAL LENGTH', () => {
    for (const length of [4, 6]) {
      expect(formatPrInHex(PrInAction.READ_KEYS, twoKeys.subarray(0, length), 1, length).out).toBe('  PR generation=0x3, Additional length=0\nAdditional length=0\n');
    }
    expect(formatPrInHex(PrInAction.READ_KEYS, twoKeys.subarray(0, 2), 1, 2).out).toBe('  PR generation=0x0, Additional length=0\nAdditional length=0\n');
  });

  it('-HH: the whole response with offsets; -HHH without', () => {
    expect(formatPrInHex(PrInAction.READ_KEYS, twoKeys, 2, 8192).out).toBe(
      ' 00     00 00 00 03 00 00 00 10  00 00 00 00 00 00 00 aa\n 10     11 22 33 44 55 66 77 88\n',
    );
    expect(formatPrInHex(PrInAction.READ_KEYS, twoKeys, 3, 8192).out).toBe(
      '00 00 00 03 00 00 00 10  00 00 00 00 00 00 00 aa\n11 22 33 44 55 66 77 88\n',
    );
  });

  it('REPORT CAPABILITIES: its 8 bytes, or what its length byte claims and malformed', () => {
    const caps = Buffer.from([0, 8, 0x1d, 0x81, 0xea, 0x01, 0, 0]);
    expect(formatPrInHex(PrInAction.REPORT_CAPABILITIES, caps, 1, 8192)).toEqual({ out: ' 00     00 08 1d 81 ea 01 00 00\n', malformed: false });
    expect(formatPrInHex(PrInAction.REPORT_CAPABILITIES, Buffer.from([0, 4, 1, 2]), 1, 8192)).toEqual({ out: ' 00     00 04 01 02\n', malformed: true });
  });
});
