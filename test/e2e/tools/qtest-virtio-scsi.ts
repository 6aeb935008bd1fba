// T2 scenario: a real QEMU (paused, -S) with a scsi-block disk on an LIO device and
// pr-manager-helper pointing at the helper under test; this script plays the guest over
// qtest, submitting CDBs through legacy virtio-scsi. The path exercised is
//   virtio-scsi -> scsi-block -> pr-manager-helper -> helper socket -> SG_IO -> LIO.
// Runs INSIDE the rig VM (jobs/qemu-client.sh starts LIO, the helper and QEMU):
//   node dist/test/e2e/tools/qtest-virtio-scsi.js --qtest SOCK --qmp SOCK \
//        --disk-b /dev/sdX --helper-ctl test/e2e/rig/helper-ctl.sh --results FILE
// Without --helper-ctl (a helper the job does not own, e.g. systemd's) the helper kill and
// restart steps are left out.
// Each step appends {"step", "ok", ...observations} to FILE; exit 0 iff all steps ok.
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { basicParams, IN, prInCdb, prOutCdb, SA, WE as WRITE_EXCLUSIVE } from '../../fixtures/scsi-bytes.js';
import { Qmp, Qtest } from './qtest-client.js';
import { appendResult, decodeReadKeys, decodeReadReservation, senseTriple, type ResultLine } from './results.js';
import { VirtioScsiLegacy, type ScsiResult } from './virtio-scsi-legacy.js';

const GOOD = 0x00;
const CHECK_CONDITION = 0x02;
const RESERVATION_CONFLICT = 0x18;
const UNIT_ATTENTION = 0x06;
const KEY_GUEST = 0x5157n; // registered by the "guest" (nexus A, through QEMU)
const KEY_OTHER = 0xbbbbn; // registered by the job on nexus B with sg_persist

const { values: opt } = parseArgs({
  options: {
    qtest: { type: 'string', default: '/run/qtest.sock' },
    qmp: { type: 'string', default: '/run/qmp.sock' },
    'disk-b': { type: 'string' },
    'helper-ctl': { type: 'string' },
    results: { type: 'string', default: `${process.env.RIG_OUT ?? '/run'}/results.jsonl` },
  },
});
function usage(): never {
  console.error('usage: qtest-virtio-scsi.js --disk-b DEV [--helper-ctl SCRIPT] [--qtest S] [--qmp S] [--results F]');
  process.exit(2);
}
const diskB: string = opt['disk-b'] ?? usage();
const helperCtl = opt['helper-ctl'];

// ---- CDBs (spc4r17 6.13 / 6.14) ----
const cdb = (...bytes: number[]): Buffer => Buffer.from(bytes);
const TEST_UNIT_READY = cdb(0, 0, 0, 0, 0, 0);
// The 10 bytes of a PR CDB; virtio-scsi takes them unpadded.
const prIn = (sa: number): Buffer => prInCdb(sa, 8192).subarray(0, 10);
const prOut = (sa: number, type: number): Buffer => prOutCdb(sa, type, 24).subarray(0, 10);
const { READ_KEYS, READ_RESERVATION, REPORT_CAPABILITIES } = IN;
const { REGISTER, RESERVE, RELEASE } = SA;

// ---- step bookkeeping ----
class Step {
  readonly line: ResultLine;
  private readonly failed: string[] = [];

  constructor(name: string) {
    this.line = { step: name };
  }

  expect(what: string, actual: unknown, expected: unknown): void {
    if (JSON.stringify(actual) !== JSON.stringify(expected)) {
      this.failed.push(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
    }
  }

  check(what: string, ok: boolean): void {
    if (!ok) this.failed.push(what);
  }

  /** Records the outcome of a SCSI command under `key`. */
  scsi(key: string, r: ScsiResult): ScsiResult {
    this.line[key] = {
      response: r.response,
      status: r.status,
      sense: r.sense.toString('hex'),
      // QEMU reports resid 0 on failures: the "transferred" bytes are then just our zeros.
      data: r.status === GOOD ? r.dataIn.toString('hex') : '',
      ms: r.ms,
    };
    return r;
  }

  get failures(): string[] {
    return this.failed;
  }
}

let failedSteps = 0;

async function step(name: string, body: (s: Step) => Promise<void>): Promise<void> {
  const s = new Step(name);
  const t0 = Date.now();
  let fatal: Error | undefined;
  try {
    await body(s);
  } catch (err) {
    fatal = err as Error;
    s.check(`exception: ${fatal.message}`, false);
  }
  const ok = s.failures.length === 0;
  if (!ok) failedSteps += 1;
  appendResult(opt.results, { ...s.line, ok, ms: Date.now() - t0, failures: s.failures });
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name} (${Date.now() - t0} ms)${ok ? '' : `: ${s.failures.join('; ')}`}`);
  if (fatal) throw fatal; // later steps depend on this one
}

function sgPersist(args: string[]): { rc: number; out: string } {
  for (let attempt = 0; ; attempt++) {
    const r = spawnSync('sg_persist', args, { encoding: 'utf8', timeout: 20_000 });
    const rc = r.status ?? 125;
    if (rc !== 6 || attempt > 0) return { rc, out: `${r.stdout}${r.stderr}` }; // 6 = UNIT ATTENTION
  }
}

function runHelperCtl(script: string, action: 'start' | 'stop'): void {
  const r = spawnSync(script, [action], { encoding: 'utf8', timeout: 30_000, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`helper-ctl ${action} failed (${r.status ?? r.signal})`);
}

const keysOf = (r: ScsiResult): string[] | undefined => decodeReadKeys(r.dataIn.toString('hex'))?.keys;

async function prConnected(qmp: Qmp): Promise<boolean | undefined> {
  const list = (await qmp.execute('query-pr-managers')) as Array<{ id: string; connected: boolean }>;
  return list.find((m) => m.id === 'helper0')?.connected;
}

async function main(): Promise<void> {
  const qmp = await Qmp.connect(opt.qmp);
  const qt = await Qtest.connect(opt.qtest);
  const disk = new VirtioScsiLegacy(qt);
  const readKeys = (): Promise<ScsiResult> => disk.command(prIn(READ_KEYS), { dataInLen: 8192 });
  const out = (sa: number, type: number, key: bigint, saKey: bigint): Promise<ScsiResult> =>
    disk.command(prOut(sa, type), { dataOut: basicParams({ key, saKey }) });

  await step('qemu-connected-to-helper', async (s) => {
    s.expect('query-pr-managers helper0.connected', (s.line.connected = await prConnected(qmp)), true);
  });

  await step('virtio-init', async (s) => {
    const cfg = await disk.init();
    s.line.config = cfg;
    s.check('request queue has descriptors', cfg.queueSize > 0);
    s.expect('sense_size', cfg.senseSize, 96);
    s.expect('cdb_size', cfg.cdbSize, 32);
  });

  await step('tur-unit-attention', async (s) => {
    const r = s.scsi('tur', await disk.command(TEST_UNIT_READY));
    s.expect('virtio response', r.response, 0);
    s.expect('status', r.status, CHECK_CONDITION);
    s.expect('sense key/ASC (power on, reset)', senseTriple(r.sense.toString('hex'))?.slice(0, 2), [UNIT_ATTENTION, 0x29]);
  });

  await step('tur-good', async (s) => {
    s.expect('status', s.scsi('tur', await disk.command(TEST_UNIT_READY)).status, GOOD);
  });

  await step('read-keys-sees-other-nexus', async (s) => {
    const r = s.scsi('read_keys', await readKeys());
    s.expect('status', r.status, GOOD);
    s.expect('keys', keysOf(r), ['bbbb']);
  });

  await step('register', async (s) => {
    s.expect('status', s.scsi('register', await out(REGISTER, 0, 0n, KEY_GUEST)).status, GOOD);
    const r = s.scsi('read_keys', await readKeys());
    s.expect('keys after register', keysOf(r), ['bbbb', '5157']);
  });

  await step('reserve-and-read-reservation', async (s) => {
    s.expect('reserve status', s.scsi('reserve', await out(RESERVE, WRITE_EXCLUSIVE, KEY_GUEST, 0n)).status, GOOD);
    const r = s.scsi('read_reservation', await disk.command(prIn(READ_RESERVATION), { dataInLen: 8192 }));
    s.expect('read reservation status', r.status, GOOD);
    const res = decodeReadReservation(r.dataIn.toString('hex'));
    s.expect('reservation', res && { key: res.key, scope: res.scope, type: res.type }, { key: '5157', scope: 0, type: 1 });
    const caps = s.scsi('report_capabilities', await disk.command(prIn(REPORT_CAPABILITIES), { dataInLen: 8192 }));
    s.expect('report capabilities status', caps.status, GOOD);
    s.expect('report capabilities length', caps.dataIn.length >= 2 ? caps.dataIn.readUInt16BE(0) : -1, 8);
  });

  await step('other-nexus-sees-guest-reservation', async (s) => {
    const r = sgPersist(['--in', '--read-full-status', diskB]);
    s.line.sg_persist_rc = r.rc;
    s.expect('sg_persist exit', r.rc, 0);
    const block = r.out.split(/(?=\n\s*Key=)/).find((b) => /Key=0x5157\b/.test(b)) ?? '';
    s.line.holder_block = block.trim().replace(/\s+/g, ' ');
    s.check('key 0x5157 is the reservation holder', /Reservation holder/.test(block));
    s.check('held by initiator A (naa.50014050000000a1)', /50014050000000a1/.test(block));
  });

  await step('conflict-reaches-guest', async (s) => {
    // Nexus B takes over: release by A through QEMU, reserve by B with sg_persist, then
    // A's reservation attempt must come back to the guest as RESERVATION CONFLICT.
    s.expect('release status', s.scsi('release', await out(RELEASE, WRITE_EXCLUSIVE, KEY_GUEST, 0n)).status, GOOD);
    const b = sgPersist(['--out', '--reserve', `--param-rk=0x${KEY_OTHER.toString(16)}`, '--prout-type=1', diskB]);
    s.expect('sg_persist reserve on B exit', b.rc, 0);
    const r = s.scsi('reserve', await out(RESERVE, WRITE_EXCLUSIVE, KEY_GUEST, 0n));
    s.expect('guest reserve status', r.status, RESERVATION_CONFLICT);
    const rel = sgPersist(['--out', '--release', `--param-rk=0x${KEY_OTHER.toString(16)}`, '--prout-type=1', diskB]);
    s.expect('sg_persist release on B exit', rel.rc, 0);
  });

  if (helperCtl !== undefined) await killAndRestartHelper(helperCtl, qmp, readKeys);

  await step('unregister', async (s) => {
    s.expect('unregister status', s.scsi('unregister', await out(REGISTER, 0, KEY_GUEST, 0n)).status, GOOD);
    const r = sgPersist(['--in', '--read-keys', diskB]);
    s.line.keys_on_b = (r.out.match(/^\s*0x[0-9a-f]+\s*$/gm) ?? []).map((k) => k.trim());
    s.expect('keys seen from nexus B', s.line.keys_on_b, ['0xbbbb']);
  });

  qt.close();
  qmp.close();
}

async function killAndRestartHelper(script: string, qmp: Qmp, readKeys: () => Promise<ScsiResult>): Promise<void> {
  await step('helper-killed', async (s) => {
    runHelperCtl(script, 'stop');
    // QEMU only notices on the next PR command (test-rigs.md 5).
    s.line.connected_before = await prConnected(qmp);
    const r = s.scsi('read_keys', await readKeys());
    s.expect('status without a helper', r.status, CHECK_CONDITION);
    s.line.sense_triple = senseTriple(r.sense.toString('hex'));
    s.check(`QEMU retried its reconnect for a while (${r.ms} ms >= 1000 ms)`, r.ms >= 1000);
    s.expect('query-pr-managers connected after the failure', (s.line.connected_after = await prConnected(qmp)), false);
  });

  await step('helper-restarted', async (s) => {
    runHelperCtl(script, 'start');
    const r = s.scsi('read_keys', await readKeys());
    s.expect('status after restart', r.status, GOOD);
    s.expect('keys after restart', keysOf(r), ['bbbb', '5157']);
    s.expect('query-pr-managers connected', (s.line.connected = await prConnected(qmp)), true);
  });
}

main().then(
  () => process.exit(failedSteps === 0 ? 0 : 1),
  (err: unknown) => {
    console.error(`qtest-virtio-scsi: aborted: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
