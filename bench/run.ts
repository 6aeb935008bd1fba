/**
 * `npm run bench`: our daemon and /usr/bin/qemu-pr-helper on the same machine
 * in one run, on the same work, alternating which goes first in each
 * repetition. Prints medians and ratios (ours / original) beside the goals and
 * writes everything, raw runs included, as JSON.
 *
 * Load comes from forked load-generator processes (bench/load/), so client
 * work runs on other cores than the runner and the single-threaded daemon.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { QEMU_PR_HELPER } from '../test/helpers/daemon.js';
import { nowMs, sleep } from './clock.js';
import { createSimulatedDisk, devNullCase, measureIsolation, measureLoad, measureSoak, simulatedCase, type Timing } from './cases.js';
import { measureNodeFloor, PYTHON, SETPRIV, startDaemon, type Daemon, type DaemonKind } from './daemons.js';
import { LoadPool } from './load/pool.js';
import { parseBenchOptions, USAGE, type BenchOptions } from './options.js';
import { privateDirtyMb, rssMb, threadCount } from './procfs.js';
import { Collected, evaluateGoals, metricsJson, renderTable } from './report.js';

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

function firstLine(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0]!.trim();
  } catch {
    return null;
  }
}

function machine() {
  let free: string | null = null;
  try {
    free = execFileSync('free', ['-g'], { encoding: 'utf8' }).trim();
  } catch {
    // procps missing: totalmem below still says enough.
  }
  return {
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memTotalGb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    free,
    kernel: release(),
    node: process.version,
    original: firstLine(QEMU_PR_HELPER, ['--version']),
    /** 1/5/15-minute load averages when the run started: other work on the machine shows here. */
    loadavgAtStart: loadavg(),
  };
}

const fmtK = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 0 });

interface Context {
  readonly o: BenchOptions;
  readonly pool: LoadPool;
  readonly dir: string;
  readonly c: Collected;
  readonly label: string;
  /** The daemons in this repetition's order. */
  readonly order: readonly DaemonKind[];
}

/** Start-up, idle RSS, then READ KEYS on /dev/null at 1, 16 and 64 clients, alternating the daemons per case. */
async function devNullSection({ o, pool, dir, c, label, order }: Context, rep: number): Promise<void> {
  const timing: Timing = { warmupMs: o.warmupMs, windowMs: o.windowMs };
  const daemons = new Map<DaemonKind, Daemon>();
  try {
    for (const kind of order) {
      const s = await startDaemon(kind, dir, `${kind}-r${rep}`, { notify: true });
      daemons.set(kind, s.daemon);
      c.add('startup.accept', kind, s.acceptMs);
      if (kind === 'ours') c.add('startup.ready', kind, s.readyMs ?? NaN);
      await sleep(o.settleMs);
      const rss = rssMb(s.daemon.pid);
      c.add('idle.rss', kind, rss);
      c.add('idle.private', kind, privateDirtyMb(s.daemon.pid));
      c.add('idle.threads', kind, threadCount(s.daemon.pid));
      progress(`${label} start-up ${kind}: handshake ${s.acceptMs.toFixed(1)} ms, READY=1 ${s.readyMs === null ? 'none' : `${s.readyMs.toFixed(1)} ms`}, idle RSS ${rss.toFixed(1)} MB`);
    }
    for (const clients of [1, 16, 64]) {
      for (const kind of order) {
        const f = await measureLoad(pool, devNullCase(daemons.get(kind)!, clients), timing);
        c.add(`throughput.c${clients}`, kind, f.perSecond);
        c.add(`cpu.c${clients}`, kind, f.daemonCpuUsPerRequest);
        if (clients === 1) {
          c.add('latency.p50', kind, f.p50Us);
          c.add('latency.p99', kind, f.p99Us);
        } else {
          c.add(`latency.c${clients}.p99`, kind, f.p99Us);
        }
        if (clients === 16) {
          c.add('cores.daemon.c16', kind, f.daemonCores);
          c.add('cores.client.c16', kind, f.clientCores);
        }
        progress(
          `${label} /dev/null ${clients} client(s) ${kind}: ${fmtK(f.perSecond)} req/s, p50 ${f.p50Us.toFixed(1)} µs, p99 ${f.p99Us.toFixed(1)} µs, ` +
            `daemon ${f.daemonCpuUsPerRequest.toFixed(1)} µs CPU/req (${f.daemonCores.toFixed(2)} cores), clients ${f.clientCores.toFixed(2)} cores`,
        );
      }
    }
  } finally {
    await Promise.all([...daemons.values()].map((d) => d.stop()));
  }
}

/**
 * Context for the start-up and memory goals: our daemon without the root
 * privilege drop (which re-executes Node), and a bare Node process.
 */
async function startupFloorSection({ o, dir, c, label }: Context, rep: number): Promise<void> {
  if (process.getuid?.() === 0 && existsSync(SETPRIV)) {
    const s = await startDaemon('ours', dir, `unpriv-r${rep}`, { args: ['--simulate'], unprivileged: true });
    await s.daemon.stop();
    c.add('startup.unprivileged', 'ours', s.acceptMs);
    progress(`${label} start-up ours as uid 65534 (--simulate, no re-exec): handshake ${s.acceptMs.toFixed(1)} ms`);
  }
  const floor = await measureNodeFloor(o.settleMs, rssMb);
  c.add('startup.nodeFloor', 'ours', floor.startMs);
  c.add('idle.rssNodeFloor', 'ours', floor.idleRssMb);
  progress(`${label} bare node: first statement after ${floor.startMs.toFixed(1)} ms, idle RSS ${floor.idleRssMb.toFixed(1)} MB`);
}

/** Our daemon only: --simulate with the embedded default, one shared file as the disk. */
async function simulatedSection({ o, pool, dir, c, label }: Context, rep: number): Promise<void> {
  const timing: Timing = { warmupMs: o.warmupMs, windowMs: o.windowMs };
  const disk = createSimulatedDisk(dir);
  const sim = await startDaemon('ours', dir, `sim-r${rep}`, { args: ['--simulate'] });
  try {
    for (const clients of [1, 64]) {
      const f = await measureLoad(pool, simulatedCase(sim.daemon, clients, disk), timing);
      c.add(`sim.c${clients}.rate`, 'ours', f.perSecond);
      c.add(`sim.c${clients}.p99`, 'ours', f.p99Us);
      progress(`${label} simulated ${clients} client(s): ${fmtK(f.perSecond)} cmd/s, p50 ${f.p50Us.toFixed(1)} µs, p99 ${f.p99Us.toFixed(1)} µs, daemon ${f.daemonCores.toFixed(2)} cores`);
    }
  } finally {
    await sim.daemon.stop();
  }
}

async function isolationSection({ o, pool, dir, c, label, order }: Context): Promise<void> {
  for (const kind of order) {
    const f = await measureIsolation(pool, kind, dir, { blockedClients: o.blockedClients, delayMs: o.isolationDelayMs, windowMs: o.isolationWindowMs });
    c.add('isolation.p50', kind, f.p50Us);
    c.add('isolation.p99', kind, f.p99Us);
    c.add('isolation.max', kind, f.maxUs);
    c.add('isolation.blocked', kind, f.blockedThroughout);
    progress(`${label} isolation ${kind}: ${f.requests} healthy requests, p50 ${f.p50Us.toFixed(0)} µs, p99 ${f.p99Us.toFixed(0)} µs, max ${f.maxUs.toFixed(0)} µs, ${f.blockedThroughout}/${o.blockedClients} blocked throughout`);
  }
}

/** Failures of single sections: reported and counted, the run goes on (a long run is not thrown away). */
const failures: string[] = [];

async function section(label: string, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    const message = `${label}: ${err instanceof Error ? err.message : String(err)}`;
    failures.push(message);
    progress(`FAILED ${message}`);
  }
}

async function repetition(rep: number, o: BenchOptions, kinds: DaemonKind[], pool: LoadPool, dir: string, c: Collected): Promise<void> {
  const ctx: Context = { o, pool, dir, c, label: `rep ${rep}/${o.reps}`, order: rep % 2 === 1 ? kinds : [...kinds].reverse() };
  if (o.only.has('devnull')) {
    await section(`${ctx.label} /dev/null`, () => devNullSection(ctx, rep));
    await section(`${ctx.label} start-up floor`, () => startupFloorSection(ctx, rep));
  }
  if (o.only.has('sim')) await section(`${ctx.label} simulated`, () => simulatedSection(ctx, rep));
  if (o.only.has('isolation')) await section(`${ctx.label} isolation`, () => isolationSection(ctx));
}

async function soak(o: BenchOptions, kinds: DaemonKind[], pool: LoadPool, dir: string, c: Collected): Promise<void> {
  for (const kind of kinds) {
    const started = nowMs();
    const f = await measureSoak(pool, kind, dir, o.soakRequests, o.settleMs);
    c.add('soak.requests', kind, f.requests);
    c.add('soak.rssWarm', kind, f.rssWarmMb);
    c.add('soak.rssEnd', kind, f.rssEndMb);
    c.add('soak.rssGrowth', kind, f.rssEndMb - f.rssWarmMb);
    c.add('soak.fdsIdle', kind, f.fdsIdle);
    c.add('soak.fdsEnd', kind, f.fdsEnd);
    c.add('soak.privateEnd', kind, f.privateEndMb);
    c.add('soak.threadsEnd', kind, f.threadsEnd);
    progress(
      `long run ${kind}: ${fmtK(f.requests)} requests in ${((nowMs() - started) / 1000).toFixed(1)} s; RSS idle ${f.rssIdleMb.toFixed(1)} MB, ` +
        `after each tenth ${f.rssCheckpointsMb.map((r) => r.toFixed(1)).join(' ')} MB; fds ${f.fdsIdle} -> ${f.fdsEnd}`,
    );
  }
}

async function main(argv: string[]): Promise<number> {
  let o: BenchOptions;
  try {
    const parsed = parseBenchOptions(argv);
    if (parsed === 'help') {
      process.stdout.write(USAGE);
      return 0;
    }
    o = parsed;
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const kinds: DaemonKind[] = ['ours'];
  if (existsSync(QEMU_PR_HELPER)) kinds.push('original');
  else {
    if (process.env['CI']) throw new Error(`${QEMU_PR_HELPER} is missing (Debian package qemu-system-common); CI installs it`);
    progress(`SKIPPING the original: ${QEMU_PR_HELPER} is missing (Debian package qemu-system-common); its columns are n/a`);
  }
  if (!existsSync(PYTHON)) progress(`${PYTHON} missing: READY=1 cannot be received, start-up to READY=1 is n/a`);

  const started = nowMs();
  const info = machine();
  progress(
    `machine: ${info.nproc} CPUs (${info.cpuModel}), ${info.memTotalGb} GB, Linux ${info.kernel}, node ${info.node}; ` +
      `${info.original ?? 'no qemu-pr-helper'}; load average ${info.loadavgAtStart.map((l) => l.toFixed(2)).join(' ')}`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'pr-bench-'));
  const pool = new LoadPool(o.procs);
  const collected = new Collected();
  try {
    for (let rep = 1; rep <= o.reps; rep++) await repetition(rep, o, kinds, pool, dir, collected);
    if (o.only.has('soak')) await section('long run', () => soak(o, kinds, pool, dir, collected));
  } finally {
    pool.close();
    rmSync(dir, { recursive: true, force: true });
  }

  const metrics = metricsJson(collected);
  const goals = evaluateGoals(collected);
  const seconds = (nowMs() - started) / 1000;
  const out = {
    version: 1,
    date: new Date().toISOString(),
    durationSeconds: seconds,
    machine: { ...info, loadavgAtEnd: loadavg() },
    options: { ...o, only: [...o.only] },
    method: {
      load: `${o.procs} forked load-generator processes; a case's connections are spread over min(procs, clients) of them`,
      window: `closed loop, ${o.warmupMs} ms warm-up, then replies counted over ${o.windowMs} ms`,
      reps: `${o.reps} repetitions, daemon order alternating; medians reported, spread = (max - min) / median`,
      ours: 'node dist/src/cli/main.js -q (as started by this user; as root that includes the privilege-drop re-exec)',
      original: QEMU_PR_HELPER,
    },
    metrics,
    goals,
    failures,
  };
  const jsonPath = resolve(o.json);
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, JSON.stringify(out, null, 2) + '\n');

  process.stdout.write(
    `\npr-helper benchmarks: ${o.reps} repetition(s), medians; ${info.nproc} CPUs (${info.cpuModel}), ${info.memTotalGb} GB, node ${info.node}, ${info.original ?? 'qemu-pr-helper missing'}\n` +
      `load: ${o.procs} load-generator processes; window ${o.windowMs} ms after ${o.warmupMs} ms warm-up; long run ${fmtK(o.soakRequests)} requests; ` +
      `load average at start ${info.loadavgAtStart.map((l) => l.toFixed(2)).join(' ')}, at end ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`,
  );
  process.stdout.write(renderTable(metrics, goals) + '\n');
  process.stdout.write(`\n${seconds.toFixed(1)} s; results in ${jsonPath}\n`);
  if (failures.length > 0) {
    process.stdout.write(`\n${failures.length} section(s) FAILED (their values are missing above):\n${failures.map((f) => `  ${f}`).join('\n')}\n`);
    return 1;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
