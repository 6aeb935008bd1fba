import { CDB_SIZE, HANDSHAKE_SIZE, MAX_TRANSFER, SUPPORTED_FEATURES } from './constants.js';
import { directionOf, type Direction, type PrRequest } from './request.js';
import { transferLength } from './transfer-length.js';

/**
 * Why a connection is dropped, in the order QEMU's prh_co_entry, prh_read and
 * prh_read_request (scsi/qemu-pr-helper.c) check them. The messages are the
 * original's error_setg() texts; null where it says nothing.
 */
export const CloseReason = {
  HANDSHAKE_EOF: { code: 'handshake-eof', message: null },
  HANDSHAKE_FEATURES: { code: 'handshake-features', message: null },
  CDB_EOF: { code: 'cdb-eof', message: null },
  EXTRA_FDS: { code: 'extra-fds', message: null },
  NO_FD: { code: 'no-fd', message: 'No file descriptor in request.' },
  INVALID_CDB: { code: 'invalid-cdb', message: 'Invalid CDB, closing socket.' },
  TRANSFER_TOO_LONG: { code: 'transfer-too-long', message: null },
  PARAMS_EOF: { code: 'params-eof', message: 'Unexpected end-of-file before all data were read' },
  /** Ours: the original waits forever for a handshake or the rest of a request. */
  TIMEOUT: { code: 'timeout', message: null },
} as const;
export type CloseReason = (typeof CloseReason)[keyof typeof CloseReason];

export type ParseStep =
  | { readonly kind: 'more' }
  | { readonly kind: 'handshake' }
  | { readonly kind: 'request'; readonly request: PrRequest }
  /** A whole request whose descriptor the kernel could not install (MSG_CTRUNC): answer BUSY, keep the connection. */
  | { readonly kind: 'lost-fd'; readonly request: Pick<PrRequest, 'direction' | 'transferLength'> }
  | { readonly kind: 'close'; readonly reason: CloseReason; readonly detail?: Record<string, unknown> };

export interface ParseResult {
  readonly step: ParseStep;
  /** Descriptors the caller must close now: they belong to no request. */
  readonly discard: readonly number[];
}

type Stage = 'handshake' | 'cdb' | 'params';

/** PR IN carries no parameters; zero bytes cannot be written to, so one instance serves every request. */
const NO_PARAMS = Buffer.alloc(0);

/**
 * Pure request framing. The caller reads exactly `wanted()` bytes at a time:
 * SCM_RIGHTS descriptors stick to the bytes they were sent with, and a larger
 * read could pull a later request's descriptor onto earlier bytes, which the
 * original never does (it reads 4, then 16, then N). Segments may be of any
 * size up to `wanted()`.
 */
export class RequestParser {
  private stage: Stage = 'handshake';
  private buffer = Buffer.alloc(CDB_SIZE);
  private filled = 0;
  private cdb: Buffer | null = null;
  private fd: number | null = null;
  private direction: Direction = 'in';
  private length = 0;
  /** The descriptor of the request being read was dropped by the kernel. */
  private fdLost = false;

  /** Exact number of bytes to read next; never 0 while a stage is open. */
  wanted(): number {
    switch (this.stage) {
      case 'handshake':
        return HANDSHAKE_SIZE - this.filled;
      case 'cdb':
        return CDB_SIZE - this.filled;
      case 'params':
        return this.length - this.filled;
    }
  }

  /** True while a request is partly read (or the handshake not done): the peer owes bytes. */
  midFrame(): boolean {
    return this.stage !== 'cdb' || this.filled > 0;
  }

  /**
   * `truncated`: the kernel dropped descriptors sent with these bytes
   * (MSG_CTRUNC, e.g. when the daemon is out of descriptors). Such a
   * request is still read whole, so that framing holds, and answered BUSY
   * rather than closed as "No file descriptor in request.".
   */
  push(data: Uint8Array, fds: readonly number[], truncated = false): ParseResult {
    if (data.length > this.wanted()) throw new RangeError(`pushed ${data.length} bytes, wanted ${this.wanted()}`);
    switch (this.stage) {
      case 'handshake':
        return this.pushHandshake(data, fds);
      case 'cdb':
        if (truncated) this.fdLost = true;
        return this.pushCdb(data, fds);
      case 'params':
        return this.pushParams(data, fds);
    }
  }

  /** End of stream (or a read error): what to report and which descriptor to close. */
  end(): ParseResult {
    const discard = this.fd === null ? [] : [this.fd];
    this.fd = null;
    const reason =
      this.stage === 'handshake' ? CloseReason.HANDSHAKE_EOF : this.stage === 'cdb' ? CloseReason.CDB_EOF : CloseReason.PARAMS_EOF;
    return { step: { kind: 'close', reason }, discard };
  }

  private pushHandshake(data: Uint8Array, fds: readonly number[]): ParseResult {
    // The original reads the handshake without a control buffer: the kernel drops the descriptors.
    this.buffer.set(data, this.filled);
    this.filled += data.length;
    if (this.filled < HANDSHAKE_SIZE) return { step: { kind: 'more' }, discard: fds };
    const features = this.buffer.readUInt32BE(0);
    this.filled = 0;
    if (features !== SUPPORTED_FEATURES) {
      return { step: { kind: 'close', reason: CloseReason.HANDSHAKE_FEATURES, detail: { features } }, discard: fds };
    }
    this.stage = 'cdb';
    return { step: { kind: 'handshake' }, discard: fds };
  }

  private pushCdb(data: Uint8Array, fds: readonly number[]): ParseResult {
    if (fds.length > 0) {
      if (this.fd !== null || fds.length > 1) {
        const discard = this.fd === null ? [...fds] : [this.fd, ...fds];
        this.fd = null;
        return { step: { kind: 'close', reason: CloseReason.EXTRA_FDS, detail: { fds: discard.length } }, discard };
      }
      this.fd = fds[0]!;
    }
    this.buffer.set(data, this.filled);
    this.filled += data.length;
    if (this.filled < CDB_SIZE) return { step: { kind: 'more' }, discard: [] };

    this.filled = 0;
    const cdb = Buffer.from(this.buffer);
    const fd = this.fd;
    this.fd = null;
    const lost = fd === null && this.fdLost;
    this.fdLost = false;
    if (fd === null && !lost) return { step: { kind: 'close', reason: CloseReason.NO_FD }, discard: [] };
    const own = fd === null ? [] : [fd];
    const direction = directionOf(cdb[0]!);
    if (direction === null) {
      return { step: { kind: 'close', reason: CloseReason.INVALID_CDB, detail: { opcode: cdb[0] } }, discard: own };
    }
    const length = transferLength(cdb);
    if (length > MAX_TRANSFER) {
      return { step: { kind: 'close', reason: CloseReason.TRANSFER_TOO_LONG, detail: { length } }, discard: own };
    }
    if (direction === 'in' || length === 0) {
      if (fd === null) return { step: { kind: 'lost-fd', request: { direction, transferLength: length } }, discard: [] };
      return { step: { kind: 'request', request: { cdb, direction, transferLength: length, params: NO_PARAMS, fd } }, discard: [] };
    }
    this.fdLost = lost;
    this.cdb = cdb;
    this.fd = fd;
    this.direction = direction;
    this.length = length;
    this.buffer = Buffer.alloc(length);
    this.stage = 'params';
    return { step: { kind: 'more' }, discard: [] };
  }

  private pushParams(data: Uint8Array, fds: readonly number[]): ParseResult {
    // Parameters are read without a control buffer in the original: descriptors are dropped.
    this.buffer.set(data, this.filled);
    this.filled += data.length;
    if (this.filled < this.length) return { step: { kind: 'more' }, discard: fds };
    if (this.fdLost) {
      const step = { kind: 'lost-fd', request: { direction: this.direction, transferLength: this.length } } as const;
      this.reset();
      return { step, discard: fds };
    }
    const request: PrRequest = {
      cdb: this.cdb!,
      direction: this.direction,
      transferLength: this.length,
      params: this.buffer,
      fd: this.fd!,
    };
    this.reset();
    return { step: { kind: 'request', request }, discard: fds };
  }

  /** Back to waiting for a CDB. */
  private reset(): void {
    this.cdb = null;
    this.fd = null;
    this.fdLost = false;
    this.filled = 0;
    this.buffer = Buffer.alloc(CDB_SIZE);
    this.stage = 'cdb';
  }
}
