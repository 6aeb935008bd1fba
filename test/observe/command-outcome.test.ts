import { describe, expect, it } from 'vitest';
import type { BackendResult } from '../../src/backend/backend.js';
import { PrInAction, PrOutAction } from '../../src/scsi/pr-codes.js';
import { basicParams, prInCdb, prOutCdb, WE } from '../fixtures/scsi-bytes.js';
import { failureKey, outcomeLine } from '../../src/observe/command-outcome.js';
import { fixedSense, Sense } from '../../src/scsi/sense.js';

const readKeys = { cdb: prInCdb(PrInAction.READ_KEYS, 8192), params: Buffer.alloc(0), direction: 'in' as const };
const preempt = {
  cdb: prOutCdb(PrOutAction.PREEMPT, WE, 24),
  params: basicParams({ key: 0xbbbbn, saKey: 0xaaaan }),
  direction: 'out' as const,
};
const check = (code: (typeof Sense)[keyof typeof Sense], transport?: BackendResult['transport']): BackendResult => ({
  status: 2,
  sense: fixedSense(code),
  ...(transport ? { transport } : {}),
});
const ok = { errno: 0, hostStatus: 0, driverStatus: 0 };

describe('outcomeLine', () => {
  it('a PR IN that went well logs nothing at the default level', () => {
    expect(outcomeLine(readKeys, { status: 0, transport: ok })).toBeNull();
  });

  it('every PR OUT is in the audit trail at info, with type, keys and result', () => {
    expect(outcomeLine(preempt, { status: 0, transport: ok })).toEqual({
      level: 'info',
      msg: 'PR OUT PREEMPT: GOOD',
      fields: { op: 'PR OUT', action: 'PREEMPT', type: 'WE', key: '0xbbbb', saKey: '0xaaaa', status: 'GOOD' },
    });
  });

  it.each([
    ['RESERVATION CONFLICT', preempt, { status: 0x18 }, 'PR OUT PREEMPT: RESERVATION CONFLICT'],
    ['RESERVATION CONFLICT reported as EBADE', readKeys, { status: 0x18, transport: { ...ok, errno: 52 } }, 'PR IN READ KEYS: RESERVATION CONFLICT'],
    ['UNIT ATTENTION', readKeys, check(Sense.RESERVATIONS_PREEMPTED), 'PR IN READ KEYS: UNIT ATTENTION'],
  ])('%s is at info', (_name, request, result, msg) => {
    expect(outcomeLine(request, result)).toMatchObject({ level: 'info', msg });
  });

  it('UNIT ATTENTION carries the decoded sense', () => {
    expect(outcomeLine(readKeys, check(Sense.RESERVATIONS_PREEMPTED))?.fields).toMatchObject({ status: 'CHECK CONDITION', sense: 'UNIT ATTENTION 2a/03 (reservations preempted)' });
  });

  it.each([
    ['an SG_IO errno by name', check(Sense.IO_PROCESS_TERMINATED, { ...ok, errno: 25 }), 'PR IN READ KEYS failed: SG_IO ENOTTY', { errno: 'ENOTTY' }],
    ['an errno libuv has no name for', { status: 0x28, transport: { ...ok, errno: 33 } }, 'PR IN READ KEYS failed: SG_IO EDOM', { errno: 'EDOM', status: 'TASK SET FULL' }],
    ['a host_status by name', check(Sense.COMMAND_TIMEOUT, { ...ok, hostStatus: 3 }), 'PR IN READ KEYS failed: host_status DID_TIME_OUT', { hostStatus: 'DID_TIME_OUT', sense: 'ABORTED COMMAND 2e/02 (command timeout during processing)' }],
    ['a UNIT ATTENTION made up for a reset', check(Sense.POWER_ON_RESET, { ...ok, hostStatus: 8 }), 'PR IN READ KEYS failed: host_status DID_RESET', { hostStatus: 'DID_RESET' }],
    ['a host_status the original reports as GOOD', check(Sense.IO_PROCESS_TERMINATED, { ...ok, hostStatus: 7, unmappedHostStatus: true }), 'PR IN READ KEYS failed: host_status DID_ERROR (qemu-pr-helper would report GOOD)', { hostStatus: 'DID_ERROR' }],
    ['a driver timeout', { status: 8, transport: { ...ok, driverStatus: 6 } }, 'PR IN READ KEYS failed: driver timeout', { driverStatus: 'DRIVER_TIMEOUT', status: 'BUSY' }],
    ['a CHECK CONDITION from the device', check(Sense.INVALID_FIELD_IN_CDB, ok), 'PR IN READ KEYS failed: CHECK CONDITION, ILLEGAL REQUEST', { sense: 'ILLEGAL REQUEST 24/00 (invalid field in CDB)' }],
    ['BUSY from the device', { status: 8 }, 'PR IN READ KEYS failed: BUSY', { status: 'BUSY' }],
  ])('a failure is at warn: %s', (_name, result, msg, fields) => {
    expect(outcomeLine(readKeys, result)).toMatchObject({ level: 'warn', msg, fields });
  });
});

describe('failureKey', () => {
  it('is the same for the same service action and cause, and differs otherwise', () => {
    const enotty = check(Sense.IO_PROCESS_TERMINATED, { ...ok, errno: 25 });
    expect(failureKey(readKeys.cdb, enotty)).toBe(failureKey(prInCdb(PrInAction.READ_KEYS, 16), check(Sense.IO_PROCESS_TERMINATED, { ...ok, errno: 25 })));
    const others = [
      failureKey(readKeys.cdb, enotty),
      failureKey(readKeys.cdb, check(Sense.IO_PROCESS_TERMINATED, { ...ok, errno: 5 })),
      failureKey(readKeys.cdb, check(Sense.COMMAND_TIMEOUT, { ...ok, hostStatus: 3 })),
      failureKey(readKeys.cdb, check(Sense.INVALID_FIELD_IN_CDB, ok)),
      failureKey(readKeys.cdb, check(Sense.MEDIUM_NOT_PRESENT, ok)),
      failureKey(preempt.cdb, enotty),
    ];
    expect(new Set(others).size).toBe(others.length);
  });
});
