/**
 * Starting the two daemons the same way and timing it: from spawn() until a
 * connection gets the 4 handshake bytes, and until READY=1 arrives on
 * $NOTIFY_SOCKET (qemu-pr-helper never sends one).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { FdStream } from '../src/io/fd-stream.js';
import * as native from '../src/native/binding.js';
import { LAUNCH_ENVIRONMENT, NODE_FLAGS } from '../scripts/deb/launcher.js';
import { DAEMON_ENTRY, QEMU_PR_HELPER } from '../test/helpers/daemon.js';
import { nowMs, sleep } from './clock.js';

export type DaemonKind = 'ours' | 'original';

export const PYTHON = '/usr/bin/python3';

export interface Daemon {
  readonly kind: DaemonKind;
  readonly pid: number;
  readonly socket: string;
  stderr(): string;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Extra daemon arguments (e.g. --simulate). */
  readonly args?: readonly string[];
  /** Node options for our daemon (e.g. --cpu-prof); ignored for the original. */
  readonly nodeArgs?: readonly string[];
  /** Another build of our daemon (bench/ab.ts compares two); default dist/src/cli/main.js. */
  readonly entry?: string;
  /** Ours at the default log level (audit trail, failures) instead of -q. */
  readonly defaultLevel?: boolean;
  /** Start as uid/gid 65534 through setpriv(1), so no privilege drop (and no re-exec) happens. */
  readonly unprivileged?: boolean;
  readonly env?: Readonly<Record<string, string>>;
  /** Listen for READY=1; for the original, only this long after it accepts (it never sends one). */
  readonly notify?: boolean;
  readonly readyGraceMs?: number;
}

export interface StartedDaemon {
  readonly daemon: Daemon;
  /** spawn() to the handshake bytes on a fresh connection. */
  readonly acceptMs: number;
  /** spawn() to READY=1; null when none arrived. */
  readonly readyMs: number | null;
}

export const SETPRIV = '/usr/bin/setpriv';
const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all'];

function command(kind: DaemonKind, socket: string, options: StartOptions): [string, string[]] {
  const args = options.args ?? [];
  if (kind === 'ours') {
    // -q: errors only, which is what the original logs without -v.
    const level = options.defaultLevel ? [] : ['-q'];
    // The installed launcher's flags, so the figures are those of a deployed helper.
    const node = [process.execPath, ...NODE_FLAGS, ...(options.nodeArgs ?? []), options.entry ?? DAEMON_ENTRY, '-k', socket, ...level, ...args];
    if (options.unprivileged) return [SETPRIV, [...NOBODY, ...node]];
    // The daemon notifies only the systemd that started it, which sets
    // SYSTEMD_EXEC_PID to the service's pid: $$ of a shell that then execs.
    if (options.notify) return ['/bin/sh', ['-c', 'SYSTEMD_EXEC_PID=$$ exec "$@"', 'sh', ...node]];
    return [node[0]!, node.slice(1)];
  }
  return [QEMU_PR_HELPER, ['-k', socket, ...args]];
}

/** A datagram receiver on `path` that prints the CLOCK_MONOTONIC time of the first READY=1 (Node cannot bind unix datagram sockets). */
const RECEIVER = `
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print('bound', flush=True)
s.settimeout(30)
try:
    while True:
        m = s.recv(4096)
        t = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        if b'READY=1' in m.split(b'\\n'):
            print('ready', t, flush=True)
            break
except socket.timeout:
    print('timeout', flush=True)
`;

interface NotifyReceiver {
  readonly path: string;
  /** nowMs() of READY=1, or null once `timeoutMs` passed without it. */
  ready(timeoutMs: number): Promise<number | null>;
  close(): void;
}

async function notifyReceiver(path: string): Promise<NotifyReceiver | null> {
  if (!existsSync(PYTHON)) return null;
  const proc = spawn(PYTHON, ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let readyAt: number | null = null;
  let wake: (() => void) | null = null;
  const bound = new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('bound')) resolve();
      const m = /ready (\d+)/.exec(out);
      if (m && readyAt === null) {
        readyAt = Number(BigInt(m[1]!) / 1000n) / 1000;
        wake?.();
      }
    });
    proc.on('exit', () => reject(new Error(`notify receiver exited: ${out}`)));
  });
  await bound;
  return {
    path,
    async ready(timeoutMs) {
      if (readyAt === null) {
        await Promise.race([new Promise<void>((r) => (wake = r)), sleep(timeoutMs)]);
      }
      return readyAt;
    },
    close: () => proc.kill(),
  };
}

/** Resolves once a fresh connection receives the handshake; polls connect() every millisecond. */
async function waitForHandshake(socket: string, proc: ChildProcess, deadline: number, stderr: () => string): Promise<number> {
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${proc.spawnfile} exited before listening: ${stderr()}`);
    if (nowMs() > deadline) throw new Error(`${proc.spawnfile} did not answer on ${socket} in time: ${stderr()}`);
    let fd: number;
    try {
      fd = native.connectUnix(socket);
    } catch {
      await sleep(1);
      continue;
    }
    const stream = new FdStream(fd);
    const chunk = await stream.read(4);
    const at = nowMs();
    stream.close();
    if (chunk) return at;
  }
}

export async function startDaemon(kind: DaemonKind, dir: string, name: string, options: StartOptions = {}): Promise<StartedDaemon> {
  if (options.unprivileged) {
    // uid 65534 must be able to create its socket (and, for APTPL, state) there.
    chmodSync(dir, 0o711);
    dir = join(dir, 'unprivileged');
    mkdirSync(dir, { recursive: true, mode: 0o1777 });
    chmodSync(dir, 0o1777);
  }
  const socket = join(dir, `${name}.sock`);
  const receiver = options.notify ? await notifyReceiver(join(dir, `${name}.notify`)) : null;
  const [cmd, args] = command(kind, socket, options);
  const env: Record<string, string | undefined> = { ...process.env, ...(kind === 'ours' ? LAUNCH_ENVIRONMENT : {}), ...options.env };
  if (options.unprivileged) env['HOME'] = dir;
  if (receiver) env['NOTIFY_SOCKET'] = receiver.path;
  else delete env['NOTIFY_SOCKET'];
  const started = nowMs();
  const proc = spawn(cmd, args, { env, stdio: ['ignore', process.env.BENCH_DAEMON_STDOUT ? 'inherit' : 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const daemon: Daemon = {
    kind,
    pid: proc.pid!,
    socket,
    stderr: () => err,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timeout = sleep(5000).then(() => proc.kill('SIGKILL'));
      await Promise.race([exited, timeout]);
      await exited;
    },
  };
  try {
    const accepted = await waitForHandshake(socket, proc, started + 10_000, daemon.stderr);
    const ready = receiver ? await receiver.ready(kind === 'ours' ? 5000 : (options.readyGraceMs ?? 200)) : null;
    return { daemon, acceptMs: accepted - started, readyMs: ready === null ? null : ready - started };
  } catch (e) {
    await daemon.stop();
    throw e;
  } finally {
    receiver?.close();
  }
}

export interface NodeFloor {
  /** spawn() until a bare `node -e` runs its first statement. */
  readonly startMs: number;
  /** VmRSS of that bare process once idle. */
  readonly idleRssMb: number;
}

/** What any Node.js process costs on this machine: the floor under our start-up time and idle RSS. */
export async function measureNodeFloor(settleMs: number, rssOf: (pid: number) => number): Promise<NodeFloor> {
  const started = nowMs();
  const proc = spawn(process.execPath, ['-e', "process.stdout.write('up'); setInterval(() => {}, 1e6)"], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const startMs = await new Promise<number>((resolve, reject) => {
      proc.stdout!.once('data', () => resolve(nowMs() - started));
      proc.once('exit', () => reject(new Error('bare node exited')));
    });
    await sleep(settleMs);
    return { startMs, idleRssMb: rssOf(proc.pid!) };
  } finally {
    proc.kill('SIGKILL');
  }
}
