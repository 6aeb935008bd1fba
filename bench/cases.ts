/**
 * The measurements. Each takes running daemons and the load pool and returns
 * plain numbers; bench/run.ts decides the order, repeats and reports them.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as native from '../src/native/binding.js';
import { ScsiStatus } from '../src/scsi/status.js';
import { createFakeTargetDir, FakeDevice, fakeTargetEnv } from '../test/helpers/fake-target.js';
import { nowMs, sleep } from './clock.js';
import { startDaemon, type Daemon, type DaemonKind } from './daemons.js';
import type { LoadPool } from './load/pool.js';
import type { WorkloadName } from './load/workloads.js';
import { cpuTimeUs, fdCount, privateDirtyMb, rssMb, threadCount } from './procfs.js';
import { percentile } from './stats.js';

export interface Timing {
  /** Load before the measuring window opens (connections, JIT, caches). */
  readonly warmupMs: number;
  readonly windowMs: number;
}

export interface LoadFigures {
  readonly perSecond: number;
  readonly p50Us: number;
  readonly p99Us: number;
  /** Daemon CPU (all threads) per request, from /proc/PID/stat over the window. */
  readonly daemonCpuUsPerRequest: number;
  /** Cores the daemon used on average during the window. */
  readonly daemonCores: number;
  /** Cores the load processes used on average during the window. */
  readonly clientCores: number;
  readonly requests: number;
}

export interface LoadCase {
  readonly daemon: Daemon;
  readonly clients: number;
  readonly device: string;
  readonly writable?: boolean;
  readonly workload: WorkloadName;
  readonly expectStatus: number;
}

/** Closed-loop load: each client sends its next request as soon as the reply arrived. */
export async function measureLoad(pool: LoadPool, c: LoadCase, timing: Timing): Promise<LoadFigures> {
  const measureFrom = nowMs() + timing.warmupMs;
  const measureTo = measureFrom + timing.windowMs;
  let cpuFrom = NaN;
  let cpuTo = NaN;
  const t1 = setTimeout(() => (cpuFrom = cpuTimeUs(c.daemon.pid)), measureFrom - nowMs());
  const t2 = setTimeout(() => (cpuTo = cpuTimeUs(c.daemon.pid)), measureTo - nowMs());
  try {
    const out = await pool.run({
      socket: c.daemon.socket,
      clients: c.clients,
      device: c.device,
      writable: c.writable ?? false,
      workload: c.workload,
      measureFrom,
      measureTo,
      expectStatus: c.expectStatus,
    });
    // The runner's own timers can fire late on a loaded machine; read what they missed now.
    if (Number.isNaN(cpuFrom)) throw new Error('the measuring window opened before the load ran');
    if (Number.isNaN(cpuTo)) cpuTo = cpuTimeUs(c.daemon.pid);
    const seconds = timing.windowMs / 1000;
    return {
      perSecond: out.completed / seconds,
      p50Us: percentile(out.latenciesUs, 50),
      p99Us: percentile(out.latenciesUs, 99),
      daemonCpuUsPerRequest: (cpuTo - cpuFrom) / out.completed,
      daemonCores: (cpuTo - cpuFrom) / 1e6 / seconds,
      clientCores: out.clientCpuUs / 1e6 / seconds,
      requests: out.completed,
    };
  } finally {
    clearTimeout(t1);
    clearTimeout(t2);
  }
}

/** PR IN READ KEYS on /dev/null: SG_IO fails with ENOTTY in both daemons, so both do the same work. */
export function devNullCase(daemon: Daemon, clients: number): LoadCase {
  return { daemon, clients, device: '/dev/null', workload: 'read-keys', expectStatus: ScsiStatus.CHECK_CONDITION };
}

export function simulatedCase(daemon: Daemon, clients: number, disk: string): LoadCase {
  return { daemon, clients, device: disk, writable: true, workload: 'sim-mix', expectStatus: ScsiStatus.GOOD };
}

/** A file to serve as the simulated shared disk. */
export function createSimulatedDisk(dir: string): string {
  const path = join(dir, 'shared-disk.img');
  writeFileSync(path, Buffer.alloc(1 << 20));
  return path;
}

export interface IsolationOptions {
  readonly blockedClients: number;
  /** How long the slow device takes per command. */
  readonly delayMs: number;
  /** Measuring window; must end well before the slow commands do. */
  readonly windowMs: number;
}

export interface IsolationFigures {
  readonly p50Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
  readonly requests: number;
  /** Slow commands still unanswered when the window closed (should be all of them). */
  readonly blockedThroughout: number;
}

/**
 * `blockedClients` connections wait on a device that takes `delayMs` per
 * command while one more client measures round trips on a healthy device of
 * the same daemon. Both devices are the LD_PRELOAD fake target, for ours and
 * for the original alike.
 */
export async function measureIsolation(pool: LoadPool, kind: DaemonKind, dir: string, o: IsolationOptions): Promise<IsolationFigures> {
  const fakeDir = createFakeTargetDir('pr-bench-fake-');
  const slow = new FakeDevice(fakeDir, 'slow');
  slow.script([{ delayMs: o.delayMs }]);
  const healthy = new FakeDevice(fakeDir, 'healthy');
  healthy.script([{}]);
  const { daemon } = await startDaemon(kind, dir, `${kind}-isolation`, { env: fakeTargetEnv(fakeDir) }).catch((err) => {
    rmSync(fakeDir, { recursive: true, force: true });
    throw err;
  });
  try {
    const hold = pool.hold(0, daemon.socket, o.blockedClients, slow.path);
    await hold.sent;
    // Let the daemon read the blocked requests and start their commands.
    await sleep(100);
    const measureFrom = nowMs() + 50;
    const measureTo = measureFrom + o.windowMs;
    const out = await pool.run({
      socket: daemon.socket,
      clients: 1,
      device: healthy.path,
      workload: 'read-keys',
      measureFrom,
      measureTo,
      expectStatus: ScsiStatus.GOOD,
    });
    const held = await hold.done;
    if (held.error) throw new Error(`blocked clients: ${held.error}`);
    return {
      p50Us: percentile(out.latenciesUs, 50),
      p99Us: percentile(out.latenciesUs, 99),
      maxUs: percentile(out.latenciesUs, 100),
      requests: out.completed,
      blockedThroughout: held.replyTimes.filter((t) => t > measureTo).length,
    };
  } finally {
    await daemon.stop();
    rmSync(fakeDir, { recursive: true, force: true });
  }
}

export interface SoakFigures {
  readonly requests: number;
  readonly rssIdleMb: number;
  /** After the first tenth of the requests: heap and JIT have settled. */
  readonly rssWarmMb: number;
  readonly rssEndMb: number;
  /** RSS after each tenth of the requests. */
  readonly rssCheckpointsMb: number[];
  readonly fdsIdle: number;
  /** Once every client has disconnected. */
  readonly fdsEnd: number;
  /** Private_Dirty and threads once idle again after the run. */
  readonly privateEndMb: number;
  readonly threadsEnd: number;
}

/**
 * `requests` READ KEYS on /dev/null over 16 connections in ten steps, reading
 * RSS after each and the descriptor count before and after.
 */
export async function measureSoak(
  pool: LoadPool,
  kind: DaemonKind,
  dir: string,
  requests: number,
  settleMs: number,
): Promise<SoakFigures> {
  const { daemon } = await startDaemon(kind, dir, `${kind}-soak`);
  try {
    await sleep(settleMs);
    const rssIdleMb = rssMb(daemon.pid);
    const fdsIdle = fdCount(daemon.pid);
    const load = devNullCase(daemon, 16);
    let done = 0;
    const rssCheckpointsMb: number[] = [];
    const step = Math.max(16, Math.round(requests / 10));
    for (let i = 0; i < 10; i++) {
      const n = i < 9 ? step : Math.max(16, requests - 9 * step);
      const out = await pool.run({
        socket: daemon.socket,
        clients: load.clients,
        device: load.device,
        workload: load.workload,
        expectStatus: load.expectStatus,
        measureFrom: 0,
        measureTo: Infinity,
        requests: n,
        samples: false,
      });
      done += out.completed;
      if (i === 0 || i === 9) await sleep(settleMs);
      rssCheckpointsMb.push(rssMb(daemon.pid));
    }
    await sleep(settleMs);
    const fdsEnd = fdCount(daemon.pid);
    // The daemon is judged idle once its idle SG_IO threads have had the time to exit.
    await sleep(native.SGIO_POOL_IDLE_SECONDS * 1000 + 2000);
    return {
      requests: done,
      rssIdleMb,
      rssWarmMb: rssCheckpointsMb[0]!,
      rssEndMb: rssCheckpointsMb[9]!,
      rssCheckpointsMb,
      fdsIdle,
      fdsEnd,
      privateEndMb: privateDirtyMb(daemon.pid),
      threadsEnd: threadCount(daemon.pid),
    };
  } finally {
    await daemon.stop();
  }
}
