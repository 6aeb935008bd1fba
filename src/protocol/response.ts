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
 * Serializes a reply, enforcing what QEMU asserts (pr-helper-protocol.md 1.5,
 * 1.7): payload only for PR IN with GOOD, never more than the allocation
 * length nor 8192 bytes. A backend bug therefore cannot abort the guest's QEMU.
 */
export function encodeResponse(request: Pick<PrRequest, 'direction' | 'transferLength'>, result: CommandResult): Buffer {
  const data = result.data ?? null;
  const size =
    request.direction === 'in' && result.status === ScsiStatus.GOOD && data
      ? Math.min(data.length, request.transferLength, MAX_TRANSFER)
      : 0;
  const out = Buffer.alloc(RESPONSE_HEADER_SIZE + size);
  out.writeInt32BE(result.status | 0, 0);
  out.writeInt32BE(size, 4);
  if (result.sense) out.set(result.sense.subarray(0, SENSE_SIZE), 8);
  if (size > 0) out.set(data!.subarray(0, size), RESPONSE_HEADER_SIZE);
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
