import { describe, expect, it } from 'vitest';
import { mapErrno, mapSgioOutcome, type SgioOutcome } from '../../src/backend/sgio-result.js';
import { BUSY, CHECK_CONDITION, FIXED_SENSE, GOOD, RESERVATION_CONFLICT, sense96, TASK_SET_FULL } from '../fixtures/scsi-bytes.js';

// Expected sense bytes (FIXED_SENSE) are spelled out by hand in the test fixtures
// from pr-helper-protocol.md 2.4c, never produced by the code under test.

function outcome(over: Partial<SgioOutcome> = {}): SgioOutcome {
  return { errno: 0, status: 0, hostStatus: 0, driverStatus: 0, resid: 0, sense: Buffer.alloc(96), ...over };
}

describe('errno table (2.4a)', () => {
  // [name, errno, expected status, expected sense or '' for all zeros]
  const rows: Array<[string, number, number, string]> = [
    ['EDOM', 33, TASK_SET_FULL, ''],
    ['ENODEV (7.2: default row)', 19, CHECK_CONDITION, FIXED_SENSE.IO_PROCESS_TERMINATED],
    ['EREMOTEIO', 121, CHECK_CONDITION, FIXED_SENSE.INTERNAL_TARGET_FAILURE],
    ['EBADE', 52, RESERVATION_CONFLICT, ''],
    ['ENODATA', 61, CHECK_CONDITION, FIXED_SENSE.UNRECOVERED_READ_ERROR],
    ['ENOMEDIUM', 123, CHECK_CONDITION, FIXED_SENSE.MEDIUM_NOT_PRESENT],
    ['ENOMEM', 12, CHECK_CONDITION, FIXED_SENSE.INTERNAL_TARGET_FAILURE],
    ['EINVAL', 22, CHECK_CONDITION, FIXED_SENSE.INVALID_FIELD_IN_CDB],
    ['ENOSPC', 28, CHECK_CONDITION, FIXED_SENSE.SPACE_ALLOC_FAILED_WP],
    ['ENOTTY', 25, CHECK_CONDITION, FIXED_SENSE.IO_PROCESS_TERMINATED],
    ['EBADF', 9, CHECK_CONDITION, FIXED_SENSE.IO_PROCESS_TERMINATED],
    ['EPERM', 1, CHECK_CONDITION, FIXED_SENSE.IO_PROCESS_TERMINATED],
    ['ENOSYS', 38, CHECK_CONDITION, FIXED_SENSE.IO_PROCESS_TERMINATED],
    ['EBADFD', 77, CHECK_CONDITION, FIXED_SENSE.IO_PROCESS_TERMINATED],
    ['EIO', 5, CHECK_CONDITION, FIXED_SENSE.IO_PROCESS_TERMINATED],
  ];

  for (const [name, errno, status, sense] of rows) {
    it(`${name} (${errno}) via mapSgioOutcome`, () => {
      // Device fields are set to things that would matter if errno did not win.
      const r = mapSgioOutcome(outcome({ errno, status: GOOD, resid: 0 }), 8192);
      expect(r.status).toBe(status);
      expect(r.sense.equals(sense96(sense))).toBe(true);
      expect(r.transferred).toBe(0);
      expect(r.unknownHostStatus).toBeUndefined();
    });

    it(`${name} (${errno}) via mapErrno`, () => {
      const r = mapErrno(errno);
      expect(r.status).toBe(status);
      expect(r.sense.equals(sense96(sense))).toBe(true);
      expect(r.transferred).toBe(0);
    });
  }

  it('mapErrno(0) does not claim success', () => {
    const r = mapErrno(0);
    expect(r.status).toBe(CHECK_CONDITION);
    expect(r.sense.equals(sense96(FIXED_SENSE.IO_PROCESS_TERMINATED))).toBe(true);
  });
});

describe('host_status table (2.4b)', () => {
  const rows: Array<[string, number, number, string]> = [
    ['NO_CONNECT', 0x01, CHECK_CONDITION, FIXED_SENSE.LUN_NOT_RESPONDING],
    ['BUS_BUSY', 0x02, BUSY, ''],
    ['TIME_OUT', 0x03, CHECK_CONDITION, FIXED_SENSE.COMMAND_TIMEOUT],
    ['BAD_TARGET', 0x04, CHECK_CONDITION, FIXED_SENSE.LUN_COMM_FAILURE],
    ['ABORT', 0x05, CHECK_CONDITION, FIXED_SENSE.COMMANDS_CLEARED],
    ['RESET', 0x08, CHECK_CONDITION, FIXED_SENSE.POWER_ON_RESET],
    ['TRANSPORT_DISRUPTED', 0x0e, CHECK_CONDITION, FIXED_SENSE.I_T_NEXUS_LOSS],
    ['TARGET_FAILURE', 0x10, CHECK_CONDITION, FIXED_SENSE.INTERNAL_TARGET_FAILURE],
    ['NEXUS_FAILURE', 0x11, RESERVATION_CONFLICT, ''],
    ['ALLOC_FAILURE', 0x12, CHECK_CONDITION, FIXED_SENSE.SPACE_ALLOC_FAILED_WP],
    ['MEDIUM_ERROR', 0x13, CHECK_CONDITION, FIXED_SENSE.UNRECOVERED_READ_ERROR],
  ];

  for (const [name, host, status, sense] of rows) {
    it(`${name} (0x${host.toString(16)})`, () => {
      const r = mapSgioOutcome(outcome({ hostStatus: host, status: GOOD, resid: 100 }), 8192);
      expect(r.status).toBe(status);
      expect(r.sense.equals(sense96(sense))).toBe(true);
      expect(r.transferred).toBe(0);
      expect(r.unknownHostStatus).toBeUndefined();
    });
  }

  // Deliberate difference from the original, which answers GOOD for these.
  for (const host of [0x06, 0x07, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0f, 0x14, 0xff, 0x1234]) {
    it(`unknown host_status 0x${host.toString(16)} -> CHECK CONDITION 0B/00/06, flagged`, () => {
      const r = mapSgioOutcome(outcome({ hostStatus: host, status: GOOD, resid: 0 }), 8192);
      expect(r.status).toBe(CHECK_CONDITION);
      expect(r.sense.equals(sense96(FIXED_SENSE.IO_PROCESS_TERMINATED))).toBe(true);
      expect(r.transferred).toBe(0);
      expect(r.unknownHostStatus).toBe(host);
    });
  }
});

describe('driver_status (2.3 step 3)', () => {
  for (const driver of [0x02, 0x04, 0x06, 0x0e, 0x16]) {
    it(`driver_status 0x${driver.toString(16)} -> BUSY, no sense`, () => {
      const r = mapSgioOutcome(outcome({ driverStatus: driver, status: GOOD }), 8192);
      expect(r.status).toBe(BUSY);
      expect(r.sense.equals(sense96())).toBe(true);
      expect(r.transferred).toBe(0);
    });
  }

  for (const driver of [0x01, 0x08, 0x10, 0x09]) {
    it(`driver_status 0x${driver.toString(16)} does not match the mask`, () => {
      const r = mapSgioOutcome(outcome({ driverStatus: driver, status: GOOD, resid: 8 }), 24);
      expect(r.status).toBe(GOOD);
      expect(r.transferred).toBe(16);
    });
  }
});

describe('device status pass-through (2.3 step 4)', () => {
  it('GOOD: transferred = dxferLen - resid, sense untouched', () => {
    const r = mapSgioOutcome(outcome({ status: GOOD, resid: 8192 - 40 }), 8192);
    expect(r.status).toBe(GOOD);
    expect(r.transferred).toBe(40);
    expect(r.sense.equals(sense96())).toBe(true);
  });

  it('CHECK CONDITION with fixed-format device sense: 96 bytes verbatim', () => {
    const device = sense96('70 00 06 00 00 00 00 0a 00 00 00 00 2a 03 00 00 00 00');
    device[40] = 0xaa; // something past byte 18 must survive too
    const r = mapSgioOutcome(outcome({ status: CHECK_CONDITION, driverStatus: 0x08, sense: device, resid: 3 }), 8192);
    expect(r.status).toBe(CHECK_CONDITION);
    expect(r.sense.equals(device)).toBe(true);
    expect(r.sense).not.toBe(device); // a copy, not the caller's buffer
    expect(r.transferred).toBe(0);
  });

  it('CHECK CONDITION with descriptor-format device sense: verbatim', () => {
    const device = sense96('72 05 24 00 00 00 00 0c 02 06 00 00 c8 00 03 00 01 02 03 04');
    const r = mapSgioOutcome(outcome({ status: CHECK_CONDITION, sense: device }), 8192);
    expect(r.status).toBe(CHECK_CONDITION);
    expect(r.sense.equals(device)).toBe(true);
  });

  it('CHECK CONDITION with no sense from the device: all zeros, nothing synthesized', () => {
    const r = mapSgioOutcome(outcome({ status: CHECK_CONDITION }), 8192);
    expect(r.status).toBe(CHECK_CONDITION);
    expect(r.sense.equals(sense96())).toBe(true);
  });

  for (const status of [RESERVATION_CONFLICT, BUSY, TASK_SET_FULL, 0x22, 0x40]) {
    it(`status 0x${status.toString(16)} passes through with size 0`, () => {
      const r = mapSgioOutcome(outcome({ status, resid: 0 }), 8192);
      expect(r.status).toBe(status);
      expect(r.transferred).toBe(0);
    });
  }

  it('short or long sense buffers are normalized to 96 bytes', () => {
    const short = Buffer.from('7000050000000000', 'hex');
    expect(mapSgioOutcome(outcome({ status: CHECK_CONDITION, sense: short }), 0).sense.equals(sense96('7000050000000000'))).toBe(true);
    const long = Buffer.alloc(200, 0x11);
    const r = mapSgioOutcome(outcome({ status: CHECK_CONDITION, sense: long }), 0);
    expect(r.sense.length).toBe(96);
    expect(r.sense.equals(Buffer.alloc(96, 0x11))).toBe(true);
  });
});

describe('resid arithmetic', () => {
  const cases: Array<[string, number, number, number]> = [
    ['no residue', 24, 0, 24],
    ['partial', 8192, 8100, 92],
    ['everything residual', 8192, 8192, 0],
    ['resid larger than dxfer_len clamps to 0', 8, 100, 0],
    ['negative resid clamps to dxfer_len', 8, -4, 8],
    ['zero-length transfer', 0, 0, 0],
  ];
  for (const [name, len, resid, expected] of cases) {
    it(name, () => {
      expect(mapSgioOutcome(outcome({ resid }), len).transferred).toBe(expected);
    });
  }
});

describe('order of precedence', () => {
  const deviceSense = sense96('70 00 06 00 00 00 00 0a 00 00 00 00 29 00 00 00 00 00');

  it('errno beats host, driver and device', () => {
    const r = mapSgioOutcome(
      outcome({ errno: 22, hostStatus: 0x11, driverStatus: 0x06, status: RESERVATION_CONFLICT }),
      8192,
    );
    expect(r.status).toBe(CHECK_CONDITION);
    expect(r.sense.equals(sense96(FIXED_SENSE.INVALID_FIELD_IN_CDB))).toBe(true);
  });

  it('host beats driver and device', () => {
    const r = mapSgioOutcome(outcome({ hostStatus: 0x11, driverStatus: 0x06, status: CHECK_CONDITION }), 8192);
    expect(r.status).toBe(RESERVATION_CONFLICT);
  });

  it('unknown host status still beats driver and device', () => {
    const r = mapSgioOutcome(outcome({ hostStatus: 0x07, driverStatus: 0x06, status: TASK_SET_FULL }), 8192);
    expect(r.status).toBe(CHECK_CONDITION);
    expect(r.unknownHostStatus).toBe(0x07);
  });

  it('driver beats device', () => {
    const r = mapSgioOutcome(outcome({ driverStatus: 0x06, status: CHECK_CONDITION, sense: deviceSense }), 8192);
    expect(r.status).toBe(BUSY);
  });

  it('device status only when nothing else applies', () => {
    const r = mapSgioOutcome(outcome({ status: CHECK_CONDITION, sense: deviceSense }), 8192);
    expect(r.status).toBe(CHECK_CONDITION);
    expect(r.sense.equals(deviceSense)).toBe(true);
  });
});

describe('sense bytes the kernel wrote on error paths (byte compatibility with 7.2)', () => {
  // The original builds its 18 bytes over the kernel-written buffer, so bytes
  // 18..95 survive, and statuses without synthesized sense keep the buffer as is.
  const kernel = sense96('72 03 11 00 00 00 00 20' + ' 00'.repeat(24) + ' 5a 5a');

  it('host_status with CHECK CONDITION: first 18 bytes replaced, the rest kept', () => {
    const r = mapSgioOutcome(outcome({ hostStatus: 0x13, sense: kernel }), 8192);
    const expected = Buffer.from(kernel);
    sense96(FIXED_SENSE.UNRECOVERED_READ_ERROR).copy(expected, 0, 0, 18);
    expect(r.sense.equals(expected)).toBe(true);
    expect(r.sense[32]).toBe(0x5a);
  });

  it('host_status without sense (BUS_BUSY) keeps the kernel bytes', () => {
    const r = mapSgioOutcome(outcome({ hostStatus: 0x02, sense: kernel }), 8192);
    expect(r.status).toBe(BUSY);
    expect(r.sense.equals(kernel)).toBe(true);
  });

  it('driver BUSY keeps the kernel bytes', () => {
    const r = mapSgioOutcome(outcome({ driverStatus: 0x06, sense: kernel }), 8192);
    expect(r.sense.equals(kernel)).toBe(true);
  });
});
