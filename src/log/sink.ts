import { closeSync, writeSync, writevSync } from 'node:fs';
import * as native from '../native/binding.js';

/**
 * What the log may hold in memory while its reader is slow. A few seconds of
 * a journald restart at the default level fit; a reader that never comes back
 * costs this much and no more.
 */
export const MAX_QUEUED_BYTES = 256 * 1024;
/** Buffers per writev(2); far below IOV_MAX (1024). */
const WRITEV_BATCH = 64;

/**
 * Writes log lines to a descriptor without ever blocking the event loop: the
 * descriptor is switched to O_NONBLOCK, lines that do not fit wait in a
 * bounded queue until poll says the descriptor is writable again, and lines
 * beyond the bound are dropped and counted. Once the queue has drained,
 * `onDropped` is told how many were lost so that one line can say so. A
 * descriptor that fails for good (EPIPE: the reader is gone) swallows
 * everything from then on; that costs nothing and is still counted.
 */
export class LogSink {
  private fd: number;
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  /** Armed only while lines wait; paused (not closed) in between. */
  private watch: native.PollHandle | null = null;
  private watching = false;
  private broken = false;
  private nonBlocking = false;
  private originalFlags: number | null = null;
  private unreported = 0;
  /** Lines lost since start (dropped while the reader stalled, or written to a broken descriptor). */
  dropped = 0;

  /**
   * @param ownsFd close the descriptor on reopen (a log file); stderr stays open.
   * @param onDropped called once the queue has drained after losing lines.
   */
  constructor(
    fd: number,
    private readonly ownsFd: boolean,
    private readonly onDropped: (count: number) => void = () => {},
  ) {
    this.fd = fd;
  }

  /** One complete line (pino writes one record per call). */
  write(line: string): void {
    if (this.broken) {
      this.dropped++;
      return;
    }
    if (this.queue.length > 0) {
      this.enqueue(Buffer.from(line));
      return;
    }
    if (!this.nonBlocking) this.makeNonBlocking();
    let written: number;
    try {
      written = writeSync(this.fd, line);
    } catch (err) {
      if (!isWouldBlock(err)) {
        this.dropped++;
        return this.fail();
      }
      written = 0;
    }
    if (written === line.length && written === Buffer.byteLength(line)) return;
    const rest = Buffer.from(line).subarray(written);
    if (rest.length === 0) return;
    this.queue.push(rest);
    this.queuedBytes += rest.length;
    this.waitWritable();
  }

  /** Writes what the descriptor takes now, without waiting (at exit). */
  flushNow(): void {
    this.drain();
  }

  /** Switches to another descriptor (a reopened log file); queued lines go there. */
  replace(fd: number): void {
    this.closeWatch();
    if (this.ownsFd) closeSync(this.fd);
    this.fd = fd;
    this.broken = false;
    this.nonBlocking = false;
    this.drain();
  }

  /** Puts the descriptor's flags back the way they were found (stderr is shared with whoever started us). */
  restore(): void {
    this.closeWatch();
    if (this.originalFlags === null) return;
    try {
      native.setStatusFlags(this.fd, this.originalFlags);
    } catch {
      // The descriptor is gone already: nothing to restore.
    }
    this.originalFlags = null;
  }

  private enqueue(bytes: Buffer): void {
    if (this.queuedBytes + bytes.length > MAX_QUEUED_BYTES) {
      this.dropped++;
      this.unreported++;
      return;
    }
    this.queue.push(bytes);
    this.queuedBytes += bytes.length;
  }

  private makeNonBlocking(): void {
    this.nonBlocking = true;
    try {
      const flags = native.getStatusFlags(this.fd);
      if (flags & native.O_NONBLOCK) return;
      native.setStatusFlags(this.fd, flags | native.O_NONBLOCK);
      if (!this.ownsFd) this.originalFlags = flags;
    } catch {
      // A descriptor without status flags cannot block either.
    }
  }

  private drain(): void {
    while (this.queue.length > 0 && !this.broken) {
      let written: number;
      try {
        written = writevSync(this.fd, this.queue.slice(0, WRITEV_BATCH));
      } catch (err) {
        if (isWouldBlock(err)) return this.waitWritable();
        return this.fail();
      }
      this.consume(written);
    }
    this.stopWatching();
    if (this.unreported > 0 && !this.broken) {
      const count = this.unreported;
      this.unreported = 0;
      this.onDropped(count);
    }
  }

  private consume(bytes: number): void {
    this.queuedBytes -= bytes;
    while (bytes > 0) {
      const head = this.queue[0]!;
      if (head.length > bytes) {
        this.queue[0] = head.subarray(bytes);
        return;
      }
      bytes -= head.length;
      this.queue.shift();
    }
  }

  private waitWritable(): void {
    if (this.watching) return;
    try {
      if (this.watch) native.pollUpdate(this.watch, native.PollEvent.WRITABLE);
      else this.watch = native.poll(this.fd, native.PollEvent.WRITABLE, () => this.drain());
      this.watching = true;
    } catch {
      // Not pollable (never the case for a descriptor that said EAGAIN).
      this.fail();
    }
  }

  private stopWatching(): void {
    if (!this.watching) return;
    this.watching = false;
    native.pollUpdate(this.watch!, 0);
  }

  private closeWatch(): void {
    if (this.watch) native.pollClose(this.watch);
    this.watch = null;
    this.watching = false;
  }

  private fail(): void {
    this.broken = true;
    this.closeWatch();
    this.dropped += this.queue.length;
    this.queue.length = 0;
    this.queuedBytes = 0;
  }
}

function isWouldBlock(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EAGAIN' || code === 'EWOULDBLOCK';
}
