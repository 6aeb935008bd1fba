/**
 * The Prometheus metrics (--metrics), with prom-client: its registry and
 * text exposition are what Prometheus and its parsers expect, without a
 * hand-written format. Loaded only when --metrics is given.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { errnoName, sgioTimeout } from '../backend/sgio-result.js';
import { describePrCommand, statusName } from '../scsi/pr-describe.js';
import type { Monitor } from './monitor.js';

export interface MetricsSources {
  readonly monitor: Monitor;
  readonly connections: () => number;
  readonly inFlight: () => { count: number; oldestSeconds: number };
  readonly droppedLogLines: () => number;
}

/** From 50 µs (a simulated command) to the 30 s SG_IO timeout. */
const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30];

type Child = { inc(): void };
type Observer = { observe(value: number): void };

export function createMetrics(sources: MetricsSources): Registry {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

  const requests = new Counter({
    name: 'pr_helper_requests_total',
    help: 'PR commands answered, by operation, service action and SCSI status',
    labelNames: ['op', 'action', 'status'] as const,
    registers,
  });
  const latency = new Histogram({
    name: 'pr_helper_request_duration_seconds',
    help: 'Time from a request read to its reply, by operation',
    labelNames: ['op'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const sgioErrors = new Counter({ name: 'pr_helper_sgio_errors_total', help: 'SG_IO calls that failed, by errno', labelNames: ['errno'] as const, registers });
  const timeouts = new Counter({
    name: 'pr_helper_sgio_timeouts_total',
    help: 'SG_IO commands that timed out, by who reported it (host_status DID_TIME_OUT or the driver)',
    labelNames: ['reported_by'] as const,
    registers,
  });

  // Labelled children are looked up once per (opcode, service action, status):
  // labels() hashes its arguments, which would cost on every request.
  const requestChildren = new Map<number, Child>();
  const latencyChildren = new Map<number, Observer>();
  sources.monitor.onCommand((request, result, seconds) => {
    const opcode = request.cdb[0]!;
    const key = (opcode << 16) | ((request.cdb[1]! & 0x1f) << 8) | (result.status & 0xff);
    let child = requestChildren.get(key);
    if (!child) {
      const { op, action } = describePrCommand(request.cdb);
      child = requests.labels(op, action, statusName(result.status));
      requestChildren.set(key, child);
    }
    child.inc();
    let observer = latencyChildren.get(opcode);
    if (!observer) {
      observer = latency.labels(describePrCommand(request.cdb).op);
      latencyChildren.set(opcode, observer);
    }
    observer.observe(seconds);
    const t = result.transport;
    if (!t) return;
    if (t.errno !== 0) sgioErrors.inc({ errno: errnoName(t.errno) });
    const timedOut = sgioTimeout(t);
    if (timedOut) timeouts.inc({ reported_by: timedOut });
  });

  const { counters } = sources.monitor;
  new Gauge({
    name: 'pr_helper_commands_in_flight',
    help: 'Commands being executed now',
    registers,
    collect() {
      this.set(sources.inFlight().count);
    },
  });
  new Gauge({
    name: 'pr_helper_oldest_command_in_flight_seconds',
    help: 'How long the longest-running command has been executing (0 when none is): a hung device shows here',
    registers,
    collect() {
      this.set(sources.inFlight().oldestSeconds);
    },
  });
  new Gauge({
    name: 'pr_helper_connections',
    help: 'Open client connections',
    registers,
    collect() {
      this.set(sources.connections());
    },
  });
  new Counter({
    name: 'pr_helper_connections_accepted_total',
    help: 'Client connections accepted and served',
    registers,
    collect() {
      this.reset();
      this.inc(counters.connectionsAccepted);
    },
  });
  new Counter({
    name: 'pr_helper_connections_refused_total',
    help: 'Client connections closed right after accept, by reason',
    labelNames: ['reason'] as const,
    registers,
    collect() {
      this.reset();
      this.inc({ reason: 'allow-list' }, counters.refusedAllowList);
      this.inc({ reason: 'connection-limit' }, counters.refusedConnectionLimit);
    },
  });
  new Counter({
    name: 'pr_helper_log_lines_dropped_total',
    help: 'Log lines lost because the log reader did not keep up or was gone',
    registers,
    collect() {
      this.reset();
      this.inc(sources.droppedLogLines());
    },
  });
  return registry;
}
