// --metrics, scraped over HTTP and parsed by a real Prometheus text parser
// (Debian's python3-prometheus-client), against counts this test produces
// with the fake SCSI target: good commands, SG_IO errors, timeouts,
// conflicts, refusals, and a hung device in flight.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HelperClient } from '../../src/client/client.js';
import { PrInAction, PrOutAction } from '../../src/scsi/pr-codes.js';
import { basicParams, prInCdb, prOutCdb, WE } from '../fixtures/scsi-bytes.js';
import { requireTool, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { createFakeTargetDir, FakeDevice, fakeTargetEnv } from '../helpers/fake-target.js';
import { RawPeer } from '../helpers/raw-peer.js';
import { waitFor } from '../helpers/wait.js';

const PARSER = '/usr/lib/python3/dist-packages/prometheus_client/parser.py';
const haveParser = requireTool(PARSER, 'python3-prometheus-client');
const asRoot = process.geteuid?.() === 0;
if (!asRoot) console.warn('SKIPPING: the SG_IO backend needs CAP_SYS_RAWIO (run as root)');

type Samples = Array<[string, Record<string, string>, number | null]>;

/** Prometheus text -> [name, labels, value] samples, by prometheus_client's parser. */
function parse(text: string): Samples {
  const script = [
    'import json, sys',
    'from prometheus_client.parser import text_string_to_metric_families',
    // NaN (an event-loop statistic before its first sample) is not JSON.
    'print(json.dumps([[s.name, s.labels, None if s.value != s.value else s.value] for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]))',
  ].join('\n');
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', script], { input: text, encoding: 'utf8' })) as Samples;
}

function scrapeText(target: { socketPath: string } | { host: string; port: number }, path = '/metrics'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    get({ ...target, path }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    }).on('error', reject);
  });
}

/** The value of one sample (0 when absent: a counter nobody has touched yet). */
function value(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  const hit = samples.find(([n, l]) => n === name && Object.entries(labels).every(([k, v]) => l[k] === v) && Object.keys(l).length === Object.keys(labels).length);
  return hit?.[2] ?? 0;
}

describe.skipIf(!asRoot || !haveParser)('--metrics', () => {
  let daemon: RunningDaemon;
  let dir: string;
  let metricsSocket: string;
  const scrape = async (): Promise<Samples> => parse((await scrapeText({ socketPath: metricsSocket })).body);

  beforeAll(async () => {
    dir = createFakeTargetDir('metrics-dev-');
    const sockDir = mkdtempSync(join(tmpdir(), 'metrics-'));
    metricsSocket = join(sockDir, 'metrics.sock');
    daemon = await startDaemon(join(sockDir, 'helper.sock'), ['--metrics', metricsSocket, '--max-connections', '3'], { env: fakeTargetEnv(dir) });
  });
  afterAll(async () => {
    expect(await daemon?.stop()).toBe(0);
    rmSync(dir, { recursive: true, force: true });
  });

  async function run(dev: FakeDevice, cdb: Buffer, times: number, params?: Buffer): Promise<void> {
    const fd = openSync(dev.path, 'r+');
    const client = await HelperClient.connect(daemon.socket);
    try {
      for (let i = 0; i < times; i++) await client.execute(cdb, fd, params);
    } finally {
      client.close();
      closeSync(fd);
    }
  }

  it('count what happened: requests by op/action/status, latency, SG_IO errors by errno, timeouts, conflicts, refusals', async () => {
    const before = await scrape();
    const good = new FakeDevice(dir, 'good');
    const enotty = new FakeDevice(dir, 'enotty');
    enotty.script([{ errno: 25 }]);
    const timedOut = new FakeDevice(dir, 'timeout');
    timedOut.script([{ hostStatus: 0x03 }]);
    const conflict = new FakeDevice(dir, 'conflict');
    conflict.script([{ status: 0x18 }]);
    const readKeys = prInCdb(PrInAction.READ_KEYS, 8192);
    const register = prOutCdb(PrOutAction.REGISTER, 0, 24);
    await run(good, readKeys, 5);
    await run(enotty, readKeys, 3);
    await run(timedOut, register, 2, basicParams({ saKey: 1n }));
    await run(conflict, prOutCdb(PrOutAction.RESERVE, WE, 24), 1, basicParams({ key: 1n }));
    // Three connections held, the fourth is refused, once the daemon has seen the others close.
    let open = Infinity;
    expect(await waitFor(async () => (open = value(await scrape(), 'pr_helper_connections')) === 0), `connections still open: ${open}`).toBe(true);
    const held = await Promise.all([1, 2, 3].map(() => HelperClient.connect(daemon.socket)));
    const refused = new RawPeer(daemon.socket);
    expect((await refused.observe()).closedByServer).toBe(true);
    refused.close();
    const during = await scrape();
    held.forEach((c) => c.close());

    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}, at = after) => value(at, name, labels) - value(before, name, labels);
    expect(delta('pr_helper_requests_total', { op: 'PR IN', action: 'READ KEYS', status: 'GOOD' })).toBe(5);
    expect(delta('pr_helper_requests_total', { op: 'PR IN', action: 'READ KEYS', status: 'CHECK CONDITION' })).toBe(3);
    expect(delta('pr_helper_requests_total', { op: 'PR OUT', action: 'REGISTER', status: 'CHECK CONDITION' })).toBe(2);
    expect(delta('pr_helper_requests_total', { op: 'PR OUT', action: 'RESERVE', status: 'RESERVATION CONFLICT' })).toBe(1);
    expect(delta('pr_helper_request_duration_seconds_count', { op: 'PR IN' })).toBe(8);
    expect(delta('pr_helper_request_duration_seconds_count', { op: 'PR OUT' })).toBe(3);
    expect(delta('pr_helper_request_duration_seconds_bucket', { op: 'PR IN', le: '+Inf' })).toBe(8);
    expect(delta('pr_helper_sgio_errors_total', { errno: 'ENOTTY' })).toBe(3);
    expect(delta('pr_helper_sgio_timeouts_total', { reported_by: 'host_status' })).toBe(2);
    expect(delta('pr_helper_connections_accepted_total')).toBe(4 + 3);
    expect(delta('pr_helper_connections_refused_total', { reason: 'connection-limit' })).toBe(1);
    expect(value(during, 'pr_helper_connections')).toBe(3);
    expect(value(after, 'pr_helper_log_lines_dropped_total')).toBe(0);
    // Default process metrics come along.
    expect(value(after, 'process_open_fds')).toBeGreaterThan(0);
  });

  it('a hung device shows as a command in flight with its age', async () => {
    const hung = new FakeDevice(dir, 'hung');
    hung.script([{ delayMs: 1500 }]);
    const fd = openSync(hung.path, 'r+');
    const client = await HelperClient.connect(daemon.socket);
    try {
      const reply = client.execute(prInCdb(PrInAction.READ_KEYS, 8192), fd);
      await new Promise((r) => setTimeout(r, 500));
      const during = await scrape();
      expect(value(during, 'pr_helper_commands_in_flight')).toBe(1);
      expect(value(during, 'pr_helper_oldest_command_in_flight_seconds')).toBeGreaterThanOrEqual(0.4);
      expect((await reply).status).toBe(0);
      const after = await scrape();
      expect(value(after, 'pr_helper_commands_in_flight')).toBe(0);
      expect(value(after, 'pr_helper_oldest_command_in_flight_seconds')).toBe(0);
    } finally {
      client.close();
      closeSync(fd);
    }
  });

  it('serves the Prometheus text format (and nothing else) on a 0600 socket', async () => {
    const res = await scrapeText({ socketPath: metricsSocket });
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect((await scrapeText({ socketPath: metricsSocket }, '/')).status).toBe(404);
    expect(execFileSync('stat', ['-c', '%a', metricsSocket], { encoding: 'utf8' }).trim()).toBe('600');
  });
});

describe.skipIf(!haveParser)('--metrics HOST:PORT', () => {
  it('listens on loopback, names the URL in the start-up line, and stops with the daemon', async () => {
    const sockDir = mkdtempSync(join(tmpdir(), 'metrics-tcp-'));
    const daemon = await startDaemon(join(sockDir, 'helper.sock'), ['--simulate', '--metrics', '127.0.0.1:0']);
    try {
      const url = /"metrics":"http:\/\/127\.0\.0\.1:(\d+)\/metrics"/.exec(daemon.stderr());
      expect(url).not.toBeNull();
      const port = Number(url![1]);
      const samples = parse((await scrapeText({ host: '127.0.0.1', port })).body);
      expect(value(samples, 'pr_helper_connections_accepted_total')).toBeGreaterThanOrEqual(1);
      expect(await daemon.stop()).toBe(0);
      await expect(scrapeText({ host: '127.0.0.1', port })).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      if (daemon.proc.exitCode === null) daemon.proc.kill('SIGKILL');
      rmSync(sockDir, { recursive: true, force: true });
    }
  });
});
