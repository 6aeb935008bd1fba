import { spawn } from 'node:child_process';
import { closeSync, writeSync } from 'node:fs';
import { encodeHandover } from './handover.js';

/** The descriptor number the detached child sees its readiness pipe on. */
const READY_FD = 4;

/**
 * -d: start this same command detached (new session, cwd /, no stdio) and
 * wait until it is accepting connections. Unlike the original, whose parent
 * exits 0 as soon as it has forked, the exit status says whether the daemon
 * really started, and its error is printed here.
 */
export async function daemonize(): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    cwd: '/',
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'ignore', 'pipe'],
    env: {
      ...process.env,
      ...encodeHandover({ listenFd: null, ownPath: null, pidfile: null, readyFd: READY_FD, dropped: null }),
    },
  });
  const pipe = child.stdio[READY_FD] as NodeJS.ReadableStream;
  let report = '';
  pipe.on('data', (chunk: Buffer) => (report += chunk.toString()));
  const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
  await new Promise<void>((resolve) => pipe.on('close', resolve));
  child.unref();
  if (report.startsWith('READY')) return 0;
  const message = report.replace(/^ERROR /, '').trim() || `daemon exited with status ${await exited} before accepting connections`;
  process.stderr.write(`pr-helper: ${message}\n`);
  return 1;
}

/** In the detached child: tell the waiting parent how start-up ended, then let go of the pipe. */
export function reportToParent(readyFd: number | null, outcome: { ok: true } | { ok: false; message: string }): void {
  if (readyFd === null) return;
  try {
    writeSync(readyFd, outcome.ok ? 'READY\n' : `ERROR ${outcome.message}\n`);
    closeSync(readyFd);
  } catch {
    // The parent is gone; nobody is left to tell.
  }
}
