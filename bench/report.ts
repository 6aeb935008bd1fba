/**
 * The metrics, their goals, the printed table and the JSON file. Every value
 * is the median over the repetitions; the spread column ((max - min) / median)
 * shows how noisy the machine was.
 */
import { median, spread } from './stats.js';
import type { DaemonKind } from './daemons.js';

export interface MetricDef {
  readonly id: string;
  readonly section: string;
  readonly label: string;
  readonly unit: string;
  readonly digits: number;
  /** False where the original cannot be measured (simulated disk, READY=1). */
  readonly original: boolean;
}

function m(id: string, section: string, label: string, unit: string, digits: number, original = true): MetricDef {
  return { id, section, label, unit, digits, original };
}

const DEV_NULL = 'PR IN READ KEYS on /dev/null (SG_IO fails with ENOTTY in both)';
const SIM = 'Simulated disk (--simulate): READ KEYS, READ RESERVATION, REGISTER AND IGNORE EXISTING KEY';
const ISO = 'Isolation: healthy client while other connections are blocked on a slow device';
const START = 'Start-up and memory';
const SOAK = 'Long run: READ KEYS on /dev/null, 16 clients';

export const METRICS: readonly MetricDef[] = [
  m('latency.p50', DEV_NULL, 'round trip p50, 1 client', 'µs', 1),
  m('latency.p99', DEV_NULL, 'round trip p99, 1 client', 'µs', 1),
  m('throughput.c1', DEV_NULL, 'throughput, 1 client', 'req/s', 0),
  m('throughput.c16', DEV_NULL, 'throughput, 16 clients', 'req/s', 0),
  m('throughput.c64', DEV_NULL, 'throughput, 64 clients', 'req/s', 0),
  m('latency.c16.p99', DEV_NULL, 'round trip p99, 16 clients', 'µs', 0),
  m('latency.c64.p99', DEV_NULL, 'round trip p99, 64 clients', 'µs', 0),
  m('cpu.c1', DEV_NULL, 'daemon CPU per request, 1 client', 'µs', 1),
  m('cpu.c16', DEV_NULL, 'daemon CPU per request, 16 clients', 'µs', 1),
  m('cpu.c64', DEV_NULL, 'daemon CPU per request, 64 clients', 'µs', 1),
  m('cores.daemon.c16', DEV_NULL, 'daemon cores busy, 16 clients', 'cores', 2),
  m('cores.client.c16', DEV_NULL, 'load-generator cores busy, 16 clients', 'cores', 2),
  m('sim.c1.rate', SIM, 'commands/s, 1 client', 'cmd/s', 0, false),
  m('sim.c1.p99', SIM, 'round trip p99, 1 client', 'µs', 0, false),
  m('sim.c64.rate', SIM, 'commands/s, 64 clients', 'cmd/s', 0, false),
  m('sim.c64.p99', SIM, 'round trip p99, 64 clients', 'µs', 0, false),
  m('isolation.p50', ISO, 'healthy round trip p50', 'µs', 0),
  m('isolation.p99', ISO, 'healthy round trip p99', 'µs', 0),
  m('isolation.max', ISO, 'healthy round trip max', 'µs', 0),
  m('isolation.blocked', ISO, 'slow commands pending through the window', 'count', 0),
  m('startup.accept', START, 'spawn to handshake answered', 'ms', 1),
  m('startup.ready', START, 'spawn to READY=1 on NOTIFY_SOCKET', 'ms', 1, false),
  m('startup.unprivileged', START, '  same, as uid 65534 (no privilege drop), --simulate', 'ms', 1, false),
  m('startup.nodeFloor', START, '  floor: bare node to first statement', 'ms', 1, false),
  m('idle.rss', START, 'idle RSS (VmRSS)', 'MB', 1),
  m('idle.rssNodeFloor', START, '  floor: bare idle node', 'MB', 1, false),
  m('idle.private', START, 'idle private memory (Private_Dirty)', 'MB', 1),
  m('idle.threads', START, 'idle threads', 'count', 0),
  m('soak.requests', SOAK, 'requests served', 'count', 0),
  m('soak.rssWarm', SOAK, 'RSS after the first tenth', 'MB', 1),
  m('soak.rssEnd', SOAK, 'RSS at the end', 'MB', 1),
  m('soak.rssGrowth', SOAK, 'RSS growth, first tenth to end', 'MB', 1),
  m('soak.fdsIdle', SOAK, 'descriptors before', 'count', 0),
  m('soak.fdsEnd', SOAK, 'descriptors after (clients gone)', 'count', 0),
  m('soak.privateEnd', SOAK, 'private memory after the run (Private_Dirty)', 'MB', 1),
  m('soak.threadsEnd', SOAK, 'threads after the run', 'count', 0),
];

export class Collected {
  private readonly values = new Map<string, Record<DaemonKind, number[]>>();

  add(id: string, kind: DaemonKind, value: number): void {
    if (!METRICS.some((d) => d.id === id)) throw new Error(`unknown metric ${id}`);
    let entry = this.values.get(id);
    if (!entry) this.values.set(id, (entry = { ours: [], original: [] }));
    entry[kind].push(value);
  }

  runs(id: string, kind: DaemonKind): number[] {
    return this.values.get(id)?.[kind] ?? [];
  }

  median(id: string, kind: DaemonKind): number | null {
    const runs = this.runs(id, kind);
    return runs.length === 0 ? null : median(runs);
  }
}

export interface GoalResult {
  readonly goal: string;
  readonly value: string;
  readonly pass: boolean | null;
}

function fmt(value: number | null, digits: number): string {
  if (value === null || !Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The targets from the brief; printed, never asserted. */
export function evaluateGoals(c: Collected): GoalResult[] {
  const ours = (id: string) => c.median(id, 'ours');
  const ratio = (id: string) => {
    const a = c.median(id, 'ours');
    const b = c.median(id, 'original');
    return a === null || b === null || b === 0 ? null : a / b;
  };
  const check = (goal: string, value: number | null, shown: string, ok: (v: number) => boolean): GoalResult => ({
    goal,
    value: value === null ? 'n/a' : shown,
    pass: value === null ? null : ok(value),
  });
  const r50 = ratio('latency.p50');
  const r16 = ratio('throughput.c16');
  const simRate = ours('sim.c64.rate');
  const simP99 = ours('sim.c64.p99');
  const isoMax = ours('isolation.max');
  const isoP50 = ours('isolation.p50');
  const accept = ours('startup.accept');
  const ready = ours('startup.ready');
  const rss = ours('idle.rss');
  const floor = ours('startup.nodeFloor');
  const startRatio = accept === null || floor === null ? null : accept / floor;
  const privateEnd = ours('soak.privateEnd');
  const threadsEnd = ours('soak.threadsEnd');
  const growth = ours('soak.rssGrowth');
  const fdsIdle = ours('soak.fdsIdle');
  const fdsEnd = ours('soak.fdsEnd');
  const fdGrowth = fdsIdle === null || fdsEnd === null ? null : fdsEnd - fdsIdle;
  return [
    check('p50 latency <= 1.0x original', r50, `${fmt(r50, 2)}x`, (v) => v <= 1.0),
    check('throughput at 16 clients >= 1.0x original', r16, `${fmt(r16, 2)}x`, (v) => v >= 1.0),
    check('simulated disk >= 50,000 cmds/s at 64 clients', simRate, `${fmt(simRate, 0)} cmd/s`, (v) => v >= 50_000),
    check('simulated disk p99 <= 1 ms at 64 clients', simP99, `${fmt(simP99 === null ? null : simP99 / 1000, 2)} ms`, (v) => v <= 1000),
    check('isolation: healthy p50 < 5 ms', isoP50, `${fmt(isoP50 === null ? null : isoP50 / 1000, 2)} ms`, (v) => v < 5000),
    check('isolation: healthy max < 5 ms', isoMax, `${fmt(isoMax === null ? null : isoMax / 1000, 2)} ms`, (v) => v < 5000),
    check('start-up to handshake <= 150 ms', accept, `${fmt(accept, 1)} ms`, (v) => v <= 150),
    check('start-up to READY=1 <= 150 ms', ready, `${fmt(ready, 1)} ms`, (v) => v <= 150),
    check('start-up to handshake <= 2.5x bare node', startRatio, `${fmt(startRatio, 2)}x`, (v) => v <= 2.5),
    check('idle RSS <= 45 MB', rss, `${fmt(rss, 1)} MB`, (v) => v <= 45),
    check('private memory after the long run <= 12 MB', privateEnd, `${fmt(privateEnd, 1)} MB`, (v) => v <= 12),
    check('threads after the long run <= 8', threadsEnd, `${fmt(threadsEnd, 0)}`, (v) => v <= 8),
    check('no RSS growth over the long run (< 5 MB)', growth, `${fmt(growth, 1)} MB`, (v) => v < 5),
    check('no descriptor growth over the long run', fdGrowth, `${fmt(fdGrowth, 0)}`, (v) => v <= 0),
  ];
}

export interface MetricJson {
  readonly id: string;
  readonly section: string;
  readonly label: string;
  readonly unit: string;
  /** Median over the repetitions. */
  readonly ours: number | null;
  /** null where the original does not apply or is not installed. */
  readonly original: number | null;
  readonly originalApplies: boolean;
  readonly ratio: number | null;
  readonly oursRuns: number[];
  readonly originalRuns: number[];
  readonly oursSpread: number;
  readonly originalSpread: number | null;
}

export function metricsJson(c: Collected): MetricJson[] {
  return METRICS.map((d) => {
    const ours = c.median(d.id, 'ours');
    const original = d.original ? c.median(d.id, 'original') : null;
    return {
      id: d.id,
      section: d.section,
      label: d.label,
      unit: d.unit,
      ours,
      original,
      originalApplies: d.original,
      ratio: ours !== null && original !== null && original !== 0 ? ours / original : null,
      oursRuns: c.runs(d.id, 'ours'),
      originalRuns: d.original ? c.runs(d.id, 'original') : [],
      oursSpread: spread(c.runs(d.id, 'ours')),
      originalSpread: d.original ? spread(c.runs(d.id, 'original')) : null,
    };
  });
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

export function renderTable(metrics: readonly MetricJson[], goals: readonly GoalResult[]): string {
  const lines: string[] = [];
  const header = `${pad('metric', 54)}${pad('ours', 12, true)}${pad('original', 12, true)}${pad('ours/orig', 11, true)}   spread ours / orig`;
  let section = '';
  for (const r of metrics) {
    const d = METRICS.find((x) => x.id === r.id)!;
    if (r.section !== section) {
      section = r.section;
      lines.push('', section, header);
    }
    const spreadText = `±${fmt(r.oursSpread * 50, 0)}% / ${r.originalSpread === null ? 'n/a' : `±${fmt(r.originalSpread * 50, 0)}%`}`;
    lines.push(
      `  ${pad(`${r.label} (${r.unit})`, 52)}${pad(fmt(r.ours, d.digits), 12, true)}${pad(fmt(r.original, d.digits), 12, true)}` +
        `${pad(r.ratio === null ? 'n/a' : `${fmt(r.ratio, 2)}x`, 11, true)}   ${spreadText}`,
    );
  }
  lines.push('', 'Goals (informational, never asserted)');
  for (const g of goals) {
    const mark = g.pass === null ? ' n/a' : g.pass ? 'PASS' : 'FAIL';
    lines.push(`  [${mark}] ${pad(g.goal, 48)} ${g.value}`);
  }
  return lines.join('\n');
}
