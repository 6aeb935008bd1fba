import { describe, expect, it } from 'vitest';
import {
  formatReservationKey,
  isAllRegistrantsType,
  isPrType,
  isRegistrantsOnlyType,
  PR_TYPE_KEYWORDS,
  prInActionName,
  prOutActionName,
  prTypeAbbreviation,
  prTypeFromKeyword,
  scopeName,
} from '../../src/scsi/pr-codes.js';
import { ALL_TYPES, IN, isAllRegistrants, isRegistrantsOnly, SA, TYPE_NAMES } from '../fixtures/scsi-bytes.js';

describe('PR codes and their names', () => {
  it('names the service actions, and the codes SPC does not define by number', () => {
    expect([IN.READ_KEYS, IN.READ_RESERVATION, IN.REPORT_CAPABILITIES, IN.READ_FULL_STATUS].map(prInActionName)).toEqual([
      'READ KEYS',
      'READ RESERVATION',
      'REPORT CAPABILITIES',
      'READ FULL STATUS',
    ]);
    expect(prOutActionName(SA.REGISTER_IGNORE)).toBe('REGISTER AND IGNORE EXISTING KEY');
    expect(prOutActionName(SA.REPLACE_LOST_RESERVATION)).toBe('REPLACE LOST RESERVATION');
    expect(prOutActionName(0x1f)).toBe('SA 0x1f');
    expect(prInActionName(4)).toBe('SA 0x4');
  });

  it.each(ALL_TYPES)('TYPE %i: abbreviation and class', (type) => {
    expect(isPrType(type)).toBe(true);
    expect(prTypeAbbreviation(type)).toBe(TYPE_NAMES[type]);
    expect(isAllRegistrantsType(type)).toBe(isAllRegistrants(type));
    expect(isRegistrantsOnlyType(type)).toBe(isRegistrantsOnly(type));
  });

  it.each([0, 2, 4, 9, 15])('TYPE %i is obsolete or reserved', (type) => {
    expect(isPrType(type)).toBe(false);
    expect(prTypeAbbreviation(type)).toBe(`0x${type.toString(16)}`);
  });

  it('the CLI keywords name the types in code order, in any case', () => {
    expect(PR_TYPE_KEYWORDS).toEqual(['wr-ex', 'ex-ac', 'wr-ex-ro', 'ex-ac-ro', 'wr-ex-ar', 'ex-ac-ar']);
    expect(PR_TYPE_KEYWORDS.map(prTypeFromKeyword)).toEqual([...ALL_TYPES]);
    expect(prTypeFromKeyword('EX-AC-AR')).toBe(8);
    expect(prTypeFromKeyword('exclusive')).toBeUndefined();
  });

  it('scope and key text', () => {
    expect(scopeName(0)).toBe('LU_SCOPE');
    expect(scopeName(2)).toBe('reserved scope [0x2]');
    expect(formatReservationKey(0xaan)).toBe('0xaa');
    expect(formatReservationKey(0xffffffffffffffffn)).toBe('0xffffffffffffffff');
  });
});
