/**
 * Turns the outcome of one SG_IO ioctl into the (status, sense, size) triple
 * the helper puts on the wire. Pure: no I/O, no logging; the caller logs.
 *
 * References, all in QEMU: scsi/qemu-pr-helper.c do_sgio_worker (decision
 * order, the zeroed 96-byte sense buffer), scsi/utils.c scsi_sense_from_errno
 * (errno table), scsi_sense_from_host_status (host_status table) and
 * scsi_build_sense (synthesized fixed sense); sg_io_sense_from_errno in
 * releases before 6.0 combined the first two.
 */
import { getSystemErrorName } from 'node:util';
import { Sense, fixedSense, type SenseCode } from '../scsi/sense.js';
import { ScsiStatus } from '../scsi/status.js';

/** Size of the sense buffer handed to SG_IO and sent in every reply. */
export const SGIO_SENSE_LENGTH = 96;

/** Linux errno numbers that scsi_sense_from_errno distinguishes (x86/arm/generic ABI values). */
export const Errno = {
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EDOM: 33,
  EBADE: 52,
  ENODATA: 61,
  EREMOTEIO: 121,
  ENOMEDIUM: 123,
} as const;

const ERRNO_NAMES = new Map<number, string>(Object.entries(Errno).map(([name, value]) => [value, name]));

/**
 * The errno's name for the log. libuv's table (util.getSystemErrorName)
 * lacks several that SG_IO returns (EDOM, EBADE, ENOMEDIUM), so the table above goes first.
 */
export function errnoName(errno: number): string {
  const known = ERRNO_NAMES.get(errno);
  if (known) return known;
  const name = getSystemErrorName(-errno);
  return name.startsWith('Unknown') ? `errno ${errno}` : name;
}

/** SG_IO host_status values (Linux DID_*) that scsi_sense_from_host_status maps to something specific. */
export const HostStatus = {
  OK: 0x00,
  NO_CONNECT: 0x01,
  BUS_BUSY: 0x02,
  TIME_OUT: 0x03,
  BAD_TARGET: 0x04,
  ABORT: 0x05,
  RESET: 0x08,
  TRANSPORT_DISRUPTED: 0x0e,
  TARGET_FAILURE: 0x10,
  NEXUS_FAILURE: 0x11,
  ALLOC_FAILURE: 0x12,
  MEDIUM_ERROR: 0x13,
} as const;

/** Linux's DID_* names by value (include/scsi/scsi_status.h), for the log. */
const HOST_STATUS_NAMES = [
  'DID_OK', 'DID_NO_CONNECT', 'DID_BUS_BUSY', 'DID_TIME_OUT', 'DID_BAD_TARGET', 'DID_ABORT', 'DID_PARITY',
  'DID_ERROR', 'DID_RESET', 'DID_BAD_INTR', 'DID_PASSTHROUGH', 'DID_SOFT_ERROR', 'DID_IMM_RETRY', 'DID_REQUEUE',
  'DID_TRANSPORT_DISRUPTED', 'DID_TRANSPORT_FAILFAST', 'DID_TARGET_FAILURE', 'DID_NEXUS_FAILURE',
  'DID_ALLOC_FAILURE', 'DID_MEDIUM_ERROR', 'DID_TRANSPORT_MARGINAL',
];

export function hostStatusName(hostStatus: number): string {
  return HOST_STATUS_NAMES[hostStatus] ?? `0x${hostStatus.toString(16).padStart(2, '0')}`;
}

/**
 * The original tests driver_status against DRIVER_TIMEOUT (6) as a bit mask,
 * so any of bits 1-2 counts (do_sgio_worker); we reproduce the mask, not the intent.
 */
export const DRIVER_STATUS_BUSY_MASK = 0x06;

/** Linux DRIVER_TIMEOUT, the driver byte value behind that mask. */
export const DRIVER_TIMEOUT = 0x06;

/** Whether an SG_IO timed out, and who said so (in do_sgio_worker's order: errno first, then host, then driver). */
export function sgioTimeout(o: Pick<SgioOutcome, 'errno' | 'hostStatus' | 'driverStatus'>): 'host_status' | 'driver' | null {
  if (o.errno !== 0) return null;
  if (o.hostStatus !== HostStatus.OK) return o.hostStatus === HostStatus.TIME_OUT ? 'host_status' : null;
  return (o.driverStatus & 0x0f) === DRIVER_TIMEOUT ? 'driver' : null;
}

/** What the SG_IO worker observed. */
export interface SgioOutcome {
  /** 0 if the ioctl returned >= 0, else the positive Linux errno. */
  errno: number;
  /** sg_io_hdr.status: the device's SCSI status byte. */
  status: number;
  hostStatus: number;
  driverStatus: number;
  resid: number;
  /** The sense buffer after the ioctl (zeroed before it), normally 96 bytes. */
  sense: Buffer;
}

/** What goes into the reply header (plus how many data bytes are valid). */
export interface MappedResult {
  status: number;
  /** Always exactly 96 bytes. */
  sense: Buffer;
  /** Valid data bytes: dxferLen - resid on GOOD, otherwise 0. */
  transferred: number;
  /**
   * Set when host_status was a value scsi_sense_from_host_status does not know. The original reports
   * GOOD in that case; we answer CHECK CONDITION instead and let the caller log it.
   */
  unknownHostStatus?: number;
}

interface StatusAndSense {
  status: number;
  /** Present only when status is CHECK CONDITION. */
  code?: SenseCode;
}

const check = (code: SenseCode): StatusAndSense => ({ status: ScsiStatus.CHECK_CONDITION, code });

/**
 * scsi_sense_from_errno as of QEMU 7.2, the release the differential suite
 * compares us with byte for byte. QEMU 10.1 added one row (ENODEV: HARDWARE
 * ERROR 04/44/00); a guest treats both answers as a failed command, so
 * following 10.1 would only cost the byte-for-byte comparison.
 */
function statusFromErrno(errno: number): StatusAndSense {
  switch (errno) {
    case 0:
      return { status: ScsiStatus.GOOD };
    case Errno.EDOM:
      return { status: ScsiStatus.TASK_SET_FULL };
    case Errno.EBADE:
      return { status: ScsiStatus.RESERVATION_CONFLICT };
    case Errno.ENODATA:
      return check(Sense.UNRECOVERED_READ_ERROR);
    case Errno.EREMOTEIO:
    case Errno.ENOMEM:
      return check(Sense.INTERNAL_TARGET_FAILURE);
    case Errno.ENOMEDIUM:
      return check(Sense.MEDIUM_NOT_PRESENT);
    case Errno.EINVAL:
      return check(Sense.INVALID_FIELD_IN_CDB);
    case Errno.ENOSPC:
      return check(Sense.SPACE_ALLOCATION_FAILED_WRITE_PROTECT);
    default:
      return check(Sense.IO_PROCESS_TERMINATED);
  }
}

/** null = a host_status value scsi_sense_from_host_status has no row for. */
function statusFromHostStatus(hostStatus: number): StatusAndSense | null {
  switch (hostStatus) {
    case HostStatus.NO_CONNECT:
      return check(Sense.LUN_NOT_RESPONDING);
    case HostStatus.BUS_BUSY:
      return { status: ScsiStatus.BUSY };
    case HostStatus.TIME_OUT:
      return check(Sense.COMMAND_TIMEOUT);
    case HostStatus.BAD_TARGET:
      return check(Sense.LUN_COMMUNICATION_FAILURE);
    case HostStatus.ABORT:
      return check(Sense.COMMANDS_CLEARED_BY_DEVICE_SERVER);
    case HostStatus.RESET:
      return check(Sense.POWER_ON_RESET);
    case HostStatus.TRANSPORT_DISRUPTED:
      return check(Sense.I_T_NEXUS_LOSS);
    case HostStatus.TARGET_FAILURE:
      return check(Sense.INTERNAL_TARGET_FAILURE);
    case HostStatus.NEXUS_FAILURE:
      return { status: ScsiStatus.RESERVATION_CONFLICT };
    case HostStatus.ALLOC_FAILURE:
      return check(Sense.SPACE_ALLOCATION_FAILED_WRITE_PROTECT);
    case HostStatus.MEDIUM_ERROR:
      return check(Sense.UNRECOVERED_READ_ERROR);
    default:
      return null;
  }
}

/** Copies (and zero-pads or truncates) whatever the kernel left into a fresh 96-byte buffer. */
function senseBase(kernelSense: Buffer | undefined): Buffer {
  const out = Buffer.alloc(SGIO_SENSE_LENGTH);
  kernelSense?.copy(out, 0, 0, Math.min(kernelSense.length, SGIO_SENSE_LENGTH));
  return out;
}

/**
 * The original synthesizes sense by writing 18 fixed-format bytes over the
 * start of the same buffer the kernel wrote into; bytes 18..95 are left as they
 * were. We do the same so replies stay byte-identical even when the kernel
 * returned sense together with a host/driver error.
 */
function finish(decided: StatusAndSense, base: Buffer, transferred: number): MappedResult {
  if (decided.code !== undefined) fixedSense(decided.code).copy(base, 0);
  return { status: decided.status, sense: base, transferred };
}

/**
 * errno -> reply, for when SG_IO could not even be issued (bad fd, worker
 * queue failure, ...). Same table as a failed ioctl; sense is zero apart from
 * the synthesized 18 bytes.
 */
export function mapErrno(errno: number): MappedResult {
  // errno 0 would mean success; a caller that had no ioctl result cannot claim it.
  const decided = statusFromErrno(errno === 0 ? -1 : errno);
  return finish(decided, senseBase(undefined), 0);
}

/**
 * Applies do_sgio_worker's decision order: errno, then host_status, then the
 * driver_status mask, then the device's own status and sense.
 *
 * @param dxferLen the dxfer_len given to SG_IO (8192 for PR IN, N for PR OUT).
 */
export function mapSgioOutcome(
  o: SgioOutcome,
  dxferLen: number,
): MappedResult {
  const base = senseBase(o.sense);

  if (o.errno !== 0) {
    return finish(statusFromErrno(o.errno), base, 0);
  }

  if (o.hostStatus !== HostStatus.OK) {
    const decided = statusFromHostStatus(o.hostStatus);
    if (decided !== null) return finish(decided, base, 0);
    // Deliberate difference: the original answers GOOD here (and even computes a
    // size), turning e.g. DID_ERROR into success. We refuse to report success for
    // a command the HBA says failed.
    const result = finish(check(Sense.IO_PROCESS_TERMINATED), base, 0);
    result.unknownHostStatus = o.hostStatus;
    return result;
  }

  if ((o.driverStatus & DRIVER_STATUS_BUSY_MASK) !== 0) {
    return finish({ status: ScsiStatus.BUSY }, base, 0);
  }

  // Device status verbatim; its sense (fixed or descriptor) passes through untouched.
  const status = o.status;
  return { status, sense: base, transferred: status === ScsiStatus.GOOD ? validBytes(dxferLen, o.resid) : 0 };
}

/**
 * dxferLen - resid, kept within [0, dxferLen]: a negative or oversized resid
 * from a confused driver must not produce a negative or too-large payload.
 */
function validBytes(dxferLen: number, resid: number): number {
  const len = Number.isFinite(dxferLen) ? Math.max(0, Math.trunc(dxferLen)) : 0;
  const r = Number.isFinite(resid) ? Math.min(Math.max(0, Math.trunc(resid)), len) : 0;
  return len - r;
}
