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
 * Writes log lines to a descriptor without ever blocking the event loop.
 * Lines written in one turn of the event loop leave together at its end, in
 * one write(2) (under load a syscall per line cost more than the rest of the
 * audit trail). The descriptor is switched to O_NONBLOCK; what it does not
 * take waits in a bounded queue until poll says it is writable again, and
 * lines beyond the bound are dropped and counted. Once the queue has drained,
 * `onDropped` is told how many were lost so that one line can say so. A
 * descriptor that fails for good (EPIPE: the reader is gone) swallows
 * everything from then on; that costs nothing and is still counted.
 */
export class LogSink {
  private fd: number;
  /** Lines of this turn, not yet handed to the descriptor. */
  private pending: string[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  /** Bytes the descriptor refused, waiting for POLLOUT. */
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  /** Armed only while bytes wait; paused (not closed) in between. */
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
    // line.length undercounts multi-byte text a little; the bound stays a bound.
    if (this.pendingBytes + this.queuedBytes + line.length > MAX_QUEUED_BYTES) {
      this.dropped++;
      this.unreported++;
      return;
    }
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes what the descriptor takes now, without waiting (at exit). */
  flushNow(): void {
    this.drain();
  }

  /** Switches to another descriptor (a reopened log file); what waits goes there. */
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

  /** This turn's lines to the descriptor, or behind what already waits for it. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    const text = this.pending.length === 1 ? this.pending[0]! : this.pending.join('');
    const lines = this.pending.length;
    this.pending = [];
    this.pendingBytes = 0;
    if (this.broken) {
      this.dropped += lines;
      return;
    }
    if (this.queue.length > 0) {
      this.push(Buffer.from(text));
      return;
    }
    if (!this.nonBlocking) this.makeNonBlocking();
    let written: number;
    try {
      written = writeSync(this.fd, text);
    } catch (err) {
      if (!isWouldBlock(err)) {
        this.dropped += lines;
        return this.fail();
      }
      written = 0;
    }
    if (written !== text.length || written !== Buffer.byteLength(text)) {
      const rest = Buffer.from(text).subarray(written);
      if (rest.length > 0) {
        this.push(rest);
        return this.waitWritable();
      }
    }
    this.reportDrops();
  }

  private push(bytes: Buffer): void {
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
    this.flush();
    this.reportDrops();
  }

  private reportDrops(): void {
    if (this.unreported === 0 || this.broken || this.queue.length > 0) return;
    const count = this.unreported;
    this.unreported = 0;
    this.onDropped(count);
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
