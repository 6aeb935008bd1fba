/** What the PR codecs share: the error for bytes too short to decode, and a Buffer view of any bytes. */

/** The bytes are too short to hold the fixed part a decoder needs. */
export class PrDataError extends RangeError {
  override name = 'PrDataError';
}

/** A Buffer over the same memory, for its big-endian readers. */
export function bufferView(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * `data` as a Buffer, or PrDataError when it is shorter than `length`:
 * "<what> is <n> bytes; <missing>", e.g. "READ KEYS data is 6 bytes; its 8-byte header does not fit".
 */
export function requireLength(data: Uint8Array, length: number, what: string, missing: string): Buffer {
  if (data.length < length) throw new PrDataError(`${what} is ${data.length} bytes; ${missing}`);
  return bufferView(data);
}
