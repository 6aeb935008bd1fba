import { execFileSync } from 'node:child_process';
import { constants, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';

/** A named pipe to hand a daemon as its stderr: a real pipe, like the one libvirt passes. */
export interface Fifo {
  /** The test's end, non-blocking; never reading it stalls the writer. */
  readonly readFd: number;
  readonly writeFd: number;
  /** JOURNAL_STREAM naming the pipe, as systemd sets it for a stream to journald. */
  readonly journalStream: string;
}

export function createFifo(dir: string, name: string): Fifo {
  const path = join(dir, name);
  execFileSync('mkfifo', [path]);
  const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const writeFd = openSync(path, constants.O_WRONLY);
  const st = fstatSync(writeFd);
  return { readFd, writeFd, journalStream: `${st.dev}:${st.ino}` };
}

/** Whatever the pipe holds right now (up to end of stream or EAGAIN). */
export function readAvailable(fd: number): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(65536);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break;
      throw err;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString();
}
