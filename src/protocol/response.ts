import { ScsiStatus } from '../scsi/status.js';
import { MAX_TRANSFER, RESPONSE_HEADER_SIZE, SENSE_SIZE } from './constants.js';
import type { PrRequest } from './request.js';

/** What a backend answers for one request. */
export interface CommandResult {
  readonly status: number;
  /** Up to 96 bytes; written zero-filled. Meaningful with CHECK CONDITION only. */
  readonly sense?: Uint8Array | null;
  /** PR IN parameter data. */
  readonly data?: Uint8Array | null;
}

/** The 4 bytes the server writes first on every connection. */
export function encodeHandshake(features: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32BE(features >>> 0);
  return buf;
}

/**
 * Serializes a reply, enforcing what QEMU asserts (prh_write_response in
 * scsi/qemu-pr-helper.c, pr_manager_helper_run in scsi/pr-manager-helper.c):
 * payload only for PR IN with GOOD, never more than the allocation
 * length nor 8192 bytes. A backend bug therefore cannot abort the guest's QEMU.
 */
export function encodeResponse(request: Pick<PrRequest, 'direction' | 'transferLength'>, result: CommandResult): Buffer {
  const data = result.data ?? null;
  const size =
    request.direction === 'in' && result.status === ScsiStatus.GOOD && data
      ? Math.min(data.length, request.transferLength, MAX_TRANSFER)
      : 0;
  // allocUnsafe takes a slice of Node's shared pool instead of a fresh
  // zero-filled ArrayBuffer per reply; every byte is written below.
  const out = Buffer.allocUnsafe(RESPONSE_HEADER_SIZE + size);
  out.writeInt32BE(result.status | 0, 0);
  out.writeInt32BE(size, 4);
  const sense = result.sense ? Math.min(result.sense.length, SENSE_SIZE) : 0;
  if (sense > 0) out.set(sense === result.sense!.length ? result.sense! : result.sense!.subarray(0, SENSE_SIZE), 8);
  out.fill(0, 8 + sense, RESPONSE_HEADER_SIZE);
  if (size > 0) out.set(size === data!.length ? data! : data!.subarray(0, size), RESPONSE_HEADER_SIZE);
  return out;
}

export interface DecodedResponseHeader {
  readonly status: number;
  readonly size: number;
  readonly sense: Buffer;
}

export function decodeResponseHeader(header: Buffer): DecodedResponseHeader {
  if (header.length < RESPONSE_HEADER_SIZE) throw new RangeError('response header is 104 bytes');
  return {
    status: header.readInt32BE(0),
    size: header.readInt32BE(4),
    sense: Buffer.from(header.subarray(8, RESPONSE_HEADER_SIZE)),
  };
}
