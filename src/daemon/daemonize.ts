import { spawn } from 'node:child_process';
import { closeSync, fstatSync, writeSync } from 'node:fs';

/** The descriptor number the detached child sees its readiness pipe on. */
const READY_FD = 4;
/**
 * Tells the detached child which descriptor to report on. It carries nothing
 * else: a crafted value can at most make a daemon write one line to a pipe of
 * the caller's own, never change how it starts or what it drops.
 */
const READY_VARIABLE = 'PR_HELPER_READY_FD';

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
    env: { ...process.env, [READY_VARIABLE]: String(READY_FD) },
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

/**
 * In a process started by daemonize(): the readiness pipe, taken out of the
 * environment. `detached` is true whenever the variable is set, so that a
 * child never detaches again, even when the descriptor it names is no socket.
 */
export function takeReadyFd(env: NodeJS.ProcessEnv = process.env): { detached: boolean; fd: number | null } {
  const value = env[READY_VARIABLE];
  if (value === undefined) return { detached: false, fd: null };
  delete env[READY_VARIABLE];
  const fd = Number(value);
  if (!Number.isInteger(fd) || fd < 3) return { detached: true, fd: null };
  try {
    // Node's 'pipe' stdio is a socketpair.
    return { detached: true, fd: fstatSync(fd).isSocket() ? fd : null };
  } catch {
    return { detached: true, fd: null };
  }
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
