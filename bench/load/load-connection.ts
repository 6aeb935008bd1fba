/**
 * One benchmark client connection, kept as lean as the protocol allows so the
 * daemon, not the client, is what gets measured: one readiness watch armed for
 * the whole life of the connection, one reply buffer, no promises per request.
 * It speaks like QEMU's pr-manager-helper: handshake, then the CDB in a
 * sendmsg of its own carrying the device descriptor, PR OUT parameters in a
 * second sendmsg, then the 104-byte header and the payload.
 */
import { closeSync } from 'node:fs';
import * as native from '../../src/native/binding.js';
import { HANDSHAKE_SIZE, MAX_TRANSFER, RESPONSE_HEADER_SIZE } from '../../src/protocol/constants.js';
import type { PlannedRequest } from './workloads.js';

export interface ReplyInfo {
  readonly status: number;
  readonly size: number;
  /** nowMs() at which its request was sent. */
  readonly sentAt: number;
}

export interface ConnectionEvents {
  /** Handshake done; the connection may send. */
  ready(conn: LoadConnection): void;
  reply(conn: LoadConnection, reply: ReplyInfo): void;
  failed(conn: LoadConnection, error: Error): void;
}

export class LoadConnection {
  readonly fd: number;
  private readonly deviceFds: number[];
  private readonly buffer = Buffer.allocUnsafe(RESPONSE_HEADER_SIZE + MAX_TRANSFER);
  private filled = 0;
  private handshaken = false;
  private watch: native.PollHandle | null = null;
  private closed = false;
  /** nowMs() when the current request was sent; 0 when none is outstanding. */
  sentAt = 0;

  constructor(
    socket: string,
    deviceFd: number,
    private readonly events: ConnectionEvents,
  ) {
    this.fd = native.connectUnix(socket);
    this.deviceFds = [deviceFd];
    this.watch = native.poll(this.fd, native.PollEvent.READABLE, (status) => this.readable(status));
  }

  get busy(): boolean {
    return this.sentAt !== 0;
  }

  send(request: PlannedRequest, now: number): void {
    this.sentAt = now;
    this.writeAll(request.cdb, this.deviceFds);
    if (request.params) this.writeAll(request.params, []);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watch) native.pollClose(this.watch);
    this.watch = null;
    closeSync(this.fd);
  }

  private writeAll(data: Buffer, fds: number[]): void {
    // One request is outstanding per connection and the socket buffer holds
    // far more than a request, so a short write means something is wrong.
    const n = native.sendmsg(this.fd, data, 0, data.length, fds);
    if (n !== data.length) throw new Error(`short write (${n} of ${data.length} bytes)`);
  }

  private readable(status: number): void {
    if (this.closed) return;
    try {
      if (status < 0) throw new Error(`poll error ${status}`);
      for (;;) {
        const got = native.recvmsg(this.fd, this.buffer, this.filled, this.buffer.length - this.filled);
        if (got === null) return;
        for (const fd of got.fds) closeSync(fd);
        if (got.bytes === 0) throw new Error('the daemon closed the connection');
        this.filled += got.bytes;
        if (!this.handshaken) {
          if (this.filled < HANDSHAKE_SIZE) continue;
          if (this.filled > HANDSHAKE_SIZE) throw new Error('bytes after the handshake');
          this.handshaken = true;
          this.filled = 0;
          this.writeAll(Buffer.alloc(HANDSHAKE_SIZE), []);
          this.events.ready(this);
          continue;
        }
        if (this.filled < RESPONSE_HEADER_SIZE) continue;
        const size = this.buffer.readInt32BE(4);
        if (this.filled < RESPONSE_HEADER_SIZE + size) continue;
        if (this.filled > RESPONSE_HEADER_SIZE + size || this.sentAt === 0) throw new Error('reply without a request');
        this.filled = 0;
        const sentAt = this.sentAt;
        this.sentAt = 0;
        this.events.reply(this, { status: this.buffer.readInt32BE(0), size, sentAt });
        if (this.closed) return;
      }
    } catch (err) {
      this.close();
      this.events.failed(this, err as Error);
    }
  }
}
