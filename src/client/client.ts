import { closeSync } from 'node:fs';
import { FdStream } from '../io/fd-stream.js';
import * as native from '../native/binding.js';
import { CDB_SIZE, HANDSHAKE_SIZE, MAX_TRANSFER, RESPONSE_HEADER_SIZE } from '../protocol/constants.js';
import { directionOf } from '../protocol/request.js';
import { decodeResponseHeader, encodeHandshake } from '../protocol/response.js';
import { transferLength } from '../protocol/transfer-length.js';

export interface Reply {
  readonly status: number;
  /** The 96 sense bytes as sent; meaningful with CHECK CONDITION. */
  readonly sense: Buffer;
  readonly data: Buffer;
}

/** The helper broke the protocol in a way QEMU would assert on (or the link broke). */
export class ProtocolError extends Error {}

/**
 * Client side of the helper protocol, behaving like QEMU's pr-manager-helper
 * (scsi/pr-manager-helper.c pr_manager_helper_run): the CDB in its own sendmsg carrying the fd,
 * PR OUT parameters without fds, and the same reply checks QEMU asserts.
 * One request at a time.
 */
export class HelperClient {
  private constructor(private readonly stream: FdStream) {}

  static async connect(socketPath: string): Promise<HelperClient> {
    const client = new HelperClient(new FdStream(native.connectUnix(socketPath)));
    try {
      // QEMU reads the server's features and ignores their value.
      await client.readExact(HANDSHAKE_SIZE);
      await client.stream.write(encodeHandshake(0));
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  /**
   * Sends one PR command on `fd`. `params` must be exactly the CDB's transfer
   * length for PR OUT; `bufferLength` is the caller's PR IN buffer (QEMU's
   * dxfer_len) and defaults to the allocation length.
   */
  async execute(cdbBytes: Uint8Array, fd: number, params: Uint8Array = new Uint8Array(), bufferLength?: number): Promise<Reply> {
    if (cdbBytes.length < 1 || cdbBytes.length > CDB_SIZE) throw new RangeError('CDB must be 1 to 16 bytes');
    const cdb = Buffer.alloc(CDB_SIZE);
    cdb.set(cdbBytes);
    const direction = directionOf(cdb[0]!);
    if (!direction) throw new RangeError(`opcode 0x${cdb[0]!.toString(16)} is not PERSISTENT RESERVE IN/OUT`);
    const length = transferLength(cdb);
    if (length > MAX_TRANSFER) throw new RangeError(`transfer length ${length} exceeds ${MAX_TRANSFER}`);
    if (direction === 'out' && params.length !== length) {
      throw new RangeError(`PR OUT needs exactly ${length} parameter bytes, got ${params.length}`);
    }
    const dxferLength = bufferLength ?? length;

    await this.stream.write(cdb, [fd]);
    if (direction === 'out' && length > 0) await this.stream.write(Buffer.from(params));
    const header = decodeResponseHeader(await this.readExact(RESPONSE_HEADER_SIZE));
    if (direction === 'out' && header.size !== 0) throw new ProtocolError(`PR OUT reply with size ${header.size}`);
    if (header.size < 0 || header.size > dxferLength) {
      throw new ProtocolError(`reply size ${header.size} exceeds the buffer of ${dxferLength} bytes`);
    }
    const data = header.size > 0 ? await this.readExact(header.size) : Buffer.alloc(0);
    return { status: header.status, sense: header.sense, data };
  }

  close(): void {
    this.stream.close();
  }

  private async readExact(length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    let filled = 0;
    while (filled < length) {
      const chunk = await this.stream.read(length - filled);
      if (!chunk) {
        throw new ProtocolError(
          this.stream.error ? `connection failed: ${this.stream.error.message}` : 'Unexpected end-of-file before all data were read',
        );
      }
      chunk.fds.forEach((fd) => closeSync(fd));
      out.set(chunk.data, filled);
      filled += chunk.data.length;
    }
    return out;
  }
}
