import { closeSync } from 'node:fs';
import * as native from '../native/binding.js';

export interface Chunk {
  readonly data: Buffer;
  /** Descriptors that arrived with these bytes; the reader owns them. */
  readonly fds: number[];
  /** The kernel dropped descriptors sent with these bytes (MSG_CTRUNC). */
  readonly truncated: boolean;
}

/**
 * Promise-based reads and writes on a non-blocking stream socket descriptor,
 * driven by one readiness watch. One read and one write may be outstanding at
 * a time, which is all a strictly sequential protocol needs.
 */
export class FdStream {
  private watch: native.PollHandle | null = null;
  private events = 0;
  private onReadable: (() => void) | null = null;
  private onWritable: (() => void) | null = null;
  private closed = false;
  /** The error that ended the stream, if it was not a clean end of stream. */
  error: Error | null = null;

  constructor(readonly fd: number) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** Up to `max` bytes with their descriptors; null at end of stream, on error or after close(). */
  async read(max: number): Promise<Chunk | null> {
    const buffer = Buffer.allocUnsafe(max);
    for (;;) {
      if (this.closed) return null;
      let got: native.ReceivedMessage | null;
      try {
        got = native.recvmsg(this.fd, buffer, 0, max);
      } catch (err) {
        this.error = err as Error;
        return null;
      }
      if (got === null) {
        await this.wait(native.PollEvent.READABLE);
        continue;
      }
      if (got.bytes === 0) {
        // End of stream can still carry descriptors only in theory; never leak them.
        got.fds.forEach((fd) => closeSync(fd));
        return null;
      }
      return { data: buffer.subarray(0, got.bytes), fds: got.fds, truncated: got.truncated };
    }
  }

  /**
   * Resolves once the descriptor is readable (or failed, or the stream was
   * closed), without reading. For a peer that is known to be quiet, e.g. a
   * client that only sends after reading our reply: the read that follows
   * then finds data instead of costing a failed recvmsg.
   */
  waitReadable(): Promise<void> {
    return this.closed ? Promise.resolve() : this.wait(native.PollEvent.READABLE);
  }

  /** Writes everything; `fds` ride on the first byte. Rejects with the system error. */
  async write(data: Buffer, fds: readonly number[] = []): Promise<void> {
    let offset = 0;
    let pending = fds;
    while (offset < data.length) {
      if (this.closed) throw Object.assign(new Error('stream closed'), { code: 'ECLOSED' });
      const n = native.sendmsg(this.fd, data, offset, data.length - offset, pending);
      if (n === null) {
        await this.wait(native.PollEvent.WRITABLE);
        continue;
      }
      offset += n;
      pending = [];
    }
  }

  /** Idempotent. A pending read resolves null; a pending write rejects. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watch) native.pollClose(this.watch);
    this.watch = null;
    closeSync(this.fd);
    const wake = [this.onReadable, this.onWritable];
    this.onReadable = this.onWritable = null;
    wake.forEach((fn) => fn?.());
  }

  private wait(event: number): Promise<void> {
    return new Promise((resolve) => {
      if (event === native.PollEvent.READABLE) this.onReadable = resolve;
      else this.onWritable = resolve;
      this.updateWatch();
    });
  }

  private updateWatch(): void {
    const events = (this.onReadable ? native.PollEvent.READABLE : 0) | (this.onWritable ? native.PollEvent.WRITABLE : 0);
    if (events === this.events) return;
    this.events = events;
    if (this.watch) native.pollUpdate(this.watch, events);
    else this.watch = native.poll(this.fd, events, (status, ready) => this.fire(status, ready));
  }

  private fire(status: number, ready: number): void {
    // An error status means the next syscall will report it; wake everyone.
    const all = status < 0;
    const read = all || (ready & native.PollEvent.READABLE) !== 0 ? this.onReadable : null;
    const write = all || (ready & native.PollEvent.WRITABLE) !== 0 ? this.onWritable : null;
    if (read) this.onReadable = null;
    if (write) this.onWritable = null;
    // The watch stays armed for the events just delivered: a server reads the
    // next request right after each reply, and re-arming per request cost a
    // libuv update each time. An event that fires with nobody waiting for it
    // (level-triggered, so it would fire again) switches it off here.
    if (!read && !write && !this.closed) this.updateWatch();
    read?.();
    write?.();
  }
}
