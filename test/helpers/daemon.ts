import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import * as native from '../../src/native/binding.js';
import { REPO_ROOT } from './repo-root.js';
import { sleep } from './wait.js';

/**
 * Our compiled daemon (npm test compiles first). PR_HELPER_ENTRY points long
 * runs at a private snapshot of dist/ (others recompile the shared tree while
 * they work).
 */
export const DAEMON_ENTRY = process.env.PR_HELPER_ENTRY ?? join(REPO_ROOT, 'dist/src/cli/main.js');
export const QEMU_PR_HELPER = '/usr/bin/qemu-pr-helper';

export interface RunningDaemon {
  readonly proc: ChildProcess;
  readonly socket: string;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  stdout(): string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Resolve once the process has exited instead of waiting for the socket. */
  expectExit?: boolean;
  timeoutMs?: number;
  /** A descriptor to give the daemon as its stderr (a FIFO, a file) instead of a pipe read by this process; stderr() is then ''. */
  stderrFd?: number;
}

/**
 * Whether a daemon serves `path`: the handshake bytes arrive. A bare connect
 * is not enough, the socket exists (and queues connections) while the daemon
 * is still dropping privileges.
 */
async function answersHandshake(path: string): Promise<boolean> {
  let fd: number;
  try {
    fd = native.connectUnix(path);
  } catch {
    return false;
  }
  try {
    const buf = Buffer.alloc(4);
    for (let i = 0; i < 50; i++) {
      const got = native.recvmsg(fd, buf, 0, 4);
      if (got) return got.bytes > 0;
      await sleep(10);
    }
    return false;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

const started = new Set<RunningDaemon>();

/** SIGKILL for a daemon that is still running (cleanup after a failed assertion). */
export function killIfRunning(d: RunningDaemon | null | undefined): void {
  if (d && d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill('SIGKILL');
}

// A failing test must not leave daemons behind: they would outlive the test worker.
process.on('exit', () => started.forEach(killIfRunning));

/**
 * Starts `command args`, resolving once `socket` accepts connections (or the
 * process exits). The process is killed when this process exits, whatever happened.
 */
export async function startProcess(command: string, args: string[], socket: string, options: StartOptions = {}): Promise<RunningDaemon> {
  const proc = spawn(command, args, { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', options.stderrFd ?? 'pipe'] });
  let err = '';
  let out = '';
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((res) => proc.on('exit', (code, signal) => res(code ?? signal ?? -1)));
  let done = false;
  void exited.then(() => (done = true));
  const daemon: RunningDaemon = {
    proc,
    socket,
    stderr: () => err,
    stdout: () => out,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (!done) proc.kill(signal);
      return exited;
    },
  };
  started.add(daemon);
  void exited.then(() => started.delete(daemon));
  if (options.expectExit) {
    await exited;
    return daemon;
  }
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  while (!(await answersHandshake(socket))) {
    if (done) throw new Error(`${command} exited before listening: ${err}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`${command} did not listen on ${socket} in time: ${err}`);
    }
    await sleep(20);
  }
  return daemon;
}

/** Our daemon (DAEMON_ENTRY) on `socket`. */
export function startDaemon(socket: string, args: string[] = [], options: StartOptions = {}): Promise<RunningDaemon> {
  if (!existsSync(DAEMON_ENTRY)) throw new Error(`${DAEMON_ENTRY} missing: run \`npm run build\` (npm test does)`);
  return startProcess(process.execPath, [DAEMON_ENTRY, '-k', socket, ...args], socket, options);
}

export function startReferenceHelper(socket: string, args: string[] = []): Promise<RunningDaemon> {
  return startProcess(QEMU_PR_HELPER, ['-k', socket, ...args], socket);
}

/**
 * Whether a system tool a test needs is present. Missing tools skip loudly on a
 * developer machine, but fail under CI, which installs them.
 */
export function requireTool(path: string, debianPackage: string): boolean {
  if (existsSync(path)) return true;
  const message = `${path} is missing (Debian package ${debianPackage}); .ci/run installs it`;
  if (process.env.CI) throw new Error(message);
  console.warn(`SKIPPING: ${message}`);
  return false;
}

/** Like requireTool, for tests that need root: a loud skip on a developer machine, a failure under CI. */
export function requireRoot(what: string, why: string): boolean {
  if (process.getuid?.() === 0) return true;
  const message = `${what} needs root (${why})`;
  if (process.env.CI) throw new Error(message);
  console.warn(`SKIPPING: ${message}`);
  return false;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (`pr-helper ARGS`) to its end, behind `prefix` when given (e.g. setpriv's arguments). */
export function runCli(args: readonly string[], prefix: readonly string[] = []): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const [command, ...rest] = [...prefix, process.execPath, DAEMON_ENTRY, ...args];
    const proc = spawn(command!, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('error', reject);
    proc.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
