import { closeSync } from 'node:fs';
import { FdStream } from '../../src/io/fd-stream.js';
import * as native from '../../src/native/binding.js';
import { sleep, waitFor } from './wait.js';

/** What a client saw: every byte until the server closed, or until the deadline. */
export interface Observation {
  readonly received: string;
  readonly closedByServer: boolean;
}

/**
 * A deliberately low-level client for hostile and differential probes: it
 * sends arbitrary segments with arbitrary descriptors and records the raw
 * bytes that come back.
 */
export class RawPeer {
  private readonly stream: FdStream;
  private readonly chunks: Buffer[] = [];
  private ended = false;
  private readonly reading: Promise<void>;

  constructor(socketPath: string) {
    this.stream = new FdStream(native.connectUnix(socketPath));
    this.reading = this.readAll();
  }

  get fd(): number {
    return this.stream.fd;
  }

  async send(data: Uint8Array | string, fds: readonly number[] = []): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data.replace(/\s+/g, ''), 'hex') : Buffer.from(data);
    await this.stream.write(bytes, fds);
  }

  /** Half-closes so that the server sees end of stream after what was sent. */
  endInput(): void {
    native.shutdown(this.stream.fd, native.SHUT_WR);
  }

  /** Resolves once at least `length` bytes have arrived (or the server closed). */
  async waitForBytes(length: number, timeoutMs = 5000): Promise<Buffer> {
    await waitFor(() => this.received().length >= length || this.ended, timeoutMs, 2);
    return this.received();
  }

  /** Waits for the server to close (bounded), then reports what arrived. */
  async observe(timeoutMs = 5000): Promise<Observation> {
    await Promise.race([this.reading, sleep(timeoutMs)]);
    return { received: this.received().toString('hex'), closedByServer: this.ended };
  }

  received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  close(): void {
    this.stream.close();
  }

  private async readAll(): Promise<void> {
    for (;;) {
      const chunk = await this.stream.read(65536);
      if (!chunk) break;
      chunk.fds.forEach((fd) => closeSync(fd));
      this.chunks.push(Buffer.from(chunk.data));
    }
    this.ended = !this.stream.isClosed;
  }
}
