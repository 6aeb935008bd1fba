import { describe, expect, it } from 'vitest';
import { transferLength } from '../../src/protocol/transfer-length.js';
import { CDB, hex } from '../fixtures/scsi-bytes.js';

describe('transfer length (group code rule)', () => {
  it('uses bytes 7-8 for PR IN and PR OUT', () => {
    expect(transferLength(CDB.READ_KEYS_8192)).toBe(8192);
    expect(transferLength(CDB.REGISTER_24)).toBe(24);
  });

  it('ignores PR OUT bytes 5-6 for framing, like the original', () => {
    expect(transferLength(CDB.REGISTER_65560)).toBe(24);
  });

  it.each([
    ['group 0 (6-byte CDB) uses byte 4', '12 00 00 00 60 00', 0x60],
    ['group 1 uses bytes 7-8', '28 00 00 00 00 00 00 01 02 00', 0x102],
    ['group 4 uses bytes 10-13', '88 00 00 00 00 00 00 00 00 00 01 02 03 04 00 00', 0x01020304],
    ['group 5 uses bytes 6-9', 'a0 00 00 00 00 00 ff ff ff ff 00 00', 0xffffffff],
    ['groups 3, 6 and 7 have none', 'c0 00 00 00 00 00 00 00 00 00', 0xffffffff],
  ])('%s', (_name, cdb, expected) => {
    const padded = Buffer.alloc(16);
    hex(cdb).copy(padded);
    expect(transferLength(padded)).toBe(expected);
  });
});
