/**
 * Runs generated cases (frames.ts) against live daemons and checks the
 * invariants: the daemon never dies, never leaks a descriptor, never sends a
 * reply QEMU would abort on, replies exactly as the model predicts where the
 * reply is knowable, only 0x5E/0x5F CDBs ever reach SG_IO (fake target log),
 * and, with a reference daemon, closes where qemu-pr-helper closes and sends
 * the same bytes.
 *
 * Shared by the bounded vitest slice (fuzz.test.ts) and `npm run fuzz`.
 */
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as native from '../../src/native/binding.js';
import { QEMU_PR_HELPER, type RunningDaemon, startDaemon, startProcess } from '../helpers/daemon.js';
import { createFakeTargetDir, FakeDevice, fakeTargetEnv, type FakeResponse } from '../helpers/fake-target.js';
import { countOpenFds } from '../helpers/fds.js';
import { RawPeer } from '../helpers/raw-peer.js';
import { writeSimConfig } from '../helpers/sim-config.js';
import { sleep } from '../helpers/wait.js';
import {
  checkReplies,
  generateCase,
  predict,
  SENSE,
  sense96,
  type ExpectedReply,
  type FdProfile,
  type FuzzCase,
  type ModelRequest,
  type Prediction,
} from './frames.js';

// ---------------------------------------------------------------------------
// Descriptors

/** Descriptors that are not SCSI devices: replies come from the errno table (spec 2.4a). */
export const PLAIN_KINDS = ['file-rw', 'file-ro', 'dev-null', 'dev-zero', 'dev-urandom', 'o-path', 'socket'] as const;
/** Access mode O_RDONLY (O_PATH counts as read-only, spec E7). */
const PLAIN_READ_ONLY = new Set(['file-ro', 'dev-urandom', 'o-path']);

/** Whether PR OUT on this descriptor kind takes the read-only path (E7). */
function isReadOnlyKind(kind: string): boolean {
  return PLAIN_READ_ONLY.has(kind) || kind.endsWith('-ro');
}

/** Reply for a plain descriptor, from spec 2.4a and E7; SG_IO errno per "Observed errno" in 2.4. */
export function expectPlain(req: ModelRequest): ExpectedReply | null {
  const empty = Buffer.alloc(0);
  if (!(PLAIN_KINDS as readonly string[]).includes(req.fd)) return null;
  if (req.direction === 'out' && PLAIN_READ_ONLY.has(req.fd)) return { status: 2, sense: SENSE.INVALID_OPCODE, data: empty };
  // /dev/urandom: EINVAL; regular file, /dev/null, /dev/zero, socket: ENOTTY; O_PATH: EBADF.
  if (req.fd === 'dev-urandom') return { status: 2, sense: SENSE.INVALID_FIELD_IN_CDB, data: empty };
  return { status: 2, sense: SENSE.IO_PROCESS_TERMINATED, data: empty };
}

function openPlain(dir: string): Map<string, number> {
  const file = join(dir, 'plain.img');
  writeFileSync(file, Buffer.alloc(4096));
  const [sockA, sockB] = native.socketPair();
  const fds = new Map<string, number>([
    ['file-rw', openSync(file, 'r+')],
    ['file-ro', openSync(file, 'r')],
    ['dev-null', openSync('/dev/null', 'r+')],
    ['dev-zero', openSync('/dev/zero', 'r+')],
    ['dev-urandom', openSync('/dev/urandom', 'r')],
    ['o-path', openSync(file, native.O_PATH)],
    ['socket', sockA],
    ['socket-peer', sockB],
  ]);
  return fds;
}

// ---------------------------------------------------------------------------
// Fake SCSI devices (LD_PRELOAD fake target): scripted answers, every SG_IO logged

const PATTERN = Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 7 + 3) & 0xff));
const DEVICE_SENSE = Buffer.from('7205240000000000', 'hex');

interface FakeSpec {
  readonly name: string;
  readonly script: FakeResponse;
  /** Reply to a command that reached the device (spec 2.2-2.4). */
  readonly reply: (req: ModelRequest) => ExpectedReply;
}

const none = Buffer.alloc(0);
const zeros = Buffer.alloc(96);
const FAKE_SPECS: readonly FakeSpec[] = [
  {
    name: 'fk-data',
    script: { data: PATTERN },
    reply: (req) => ({ status: 0, sense: zeros, data: req.direction === 'in' ? PATTERN.subarray(0, req.length) : none }),
  },
  {
    name: 'fk-short',
    script: { data: PATTERN.subarray(0, 100) },
    reply: (req) => ({ status: 0, sense: zeros, data: req.direction === 'in' ? PATTERN.subarray(0, Math.min(100, req.length)) : none }),
  },
  { name: 'fk-check', script: { status: 2, sense: DEVICE_SENSE }, reply: () => ({ status: 2, sense: sense96(DEVICE_SENSE.toString('hex')), data: none }) },
  { name: 'fk-conflict', script: { status: 0x18 }, reply: () => ({ status: 0x18, sense: zeros, data: none }) },
  { name: 'fk-enospc', script: { errno: 28 }, reply: () => ({ status: 2, sense: SENSE.SPACE_ALLOC_FAILED_WP, data: none }) },
  { name: 'fk-timeout', script: { hostStatus: 0x03 }, reply: () => ({ status: 2, sense: SENSE.COMMAND_TIMEOUT, data: none }) },
  { name: 'fk-busy', script: { driverStatus: 0x06 }, reply: () => ({ status: 0x08, sense: zeros, data: none }) },
];

interface FakeSetup {
  readonly dir: string;
  readonly devices: Map<string, FakeDevice>;
  readonly fds: Map<string, number>;
  readonly kinds: string[];
}

function setUpFakeDevices(prefix = 'fuzz-fake-'): FakeSetup {
  const dir = createFakeTargetDir(prefix);
  const devices = new Map<string, FakeDevice>();
  const fds = new Map<string, number>();
  const kinds: string[] = [];
  for (const spec of FAKE_SPECS) {
    const dev = new FakeDevice(dir, spec.name);
    dev.script([spec.script]);
    devices.set(spec.name, dev);
    fds.set(`${spec.name}-rw`, openSync(dev.path, constants.O_RDWR));
    fds.set(`${spec.name}-ro`, openSync(dev.path, constants.O_RDONLY));
    kinds.push(`${spec.name}-rw`, `${spec.name}-ro`);
  }
  return { dir, devices, fds, kinds };
}

function fakeDeviceOf(kind: string): { spec: FakeSpec; readOnly: boolean } | null {
  const m = /^(fk-[a-z]+)-(rw|ro)$/.exec(kind);
  if (!m) return null;
  const spec = FAKE_SPECS.find((s) => s.name === m[1]);
  return spec ? { spec, readOnly: m[2] === 'ro' } : null;
}

function expectFake(req: ModelRequest): ExpectedReply | null {
  const dev = fakeDeviceOf(req.fd);
  if (!dev) return expectPlain(req);
  if (req.direction === 'out' && dev.readOnly) return { status: 2, sense: SENSE.INVALID_OPCODE, data: none };
  return dev.spec.reply(req);
}

/** Whether the request must reach SG_IO, and how the fake target would log it. */
function sgioSignature(req: ModelRequest): { device: string; signature: string } | null {
  const dev = fakeDeviceOf(req.fd);
  if (!dev || (req.direction === 'out' && dev.readOnly)) return null;
  // Spec 2.2: PR IN reads into the full 8 KiB buffer; PR OUT sends exactly N bytes.
  const dir = req.direction === 'in' ? -3 : -2;
  const len = req.direction === 'in' ? 8192 : req.length;
  return { device: dev.spec.name, signature: `${req.cdb.toString('hex')} dir=${dir} len=${len} out=${req.direction === 'out' ? req.params.toString('hex') : ''}` };
}

// ---------------------------------------------------------------------------
// Simulated disk

interface SimSetup {
  readonly dir: string;
  readonly config: string;
  readonly fds: Map<string, number>;
  readonly kinds: string[];
}

function setUpSimulation(): SimSetup {
  const dir = mkdtempSync(join(tmpdir(), 'fuzz-sim-'));
  const images = ['a', 'b', 'c', 'unrouted'].map((n) => join(dir, `${n}.img`));
  images.forEach((p) => writeFileSync(p, Buffer.alloc(512)));
  const config = writeSimConfig(dir, [
    {
      name: 'lun0',
      paths: [
        { path: images[0]!, initiator: 'iqn.2024-01.test:host-a' },
        { path: images[1]!, initiator: 'iqn.2024-01.test:host-b', targetPort: 2 },
      ],
    },
    { name: 'lun1', paths: [{ path: images[2]!, initiator: 'naa.5001405000000001' }] },
  ]);
  const fds = new Map<string, number>();
  const kinds: string[] = [];
  for (const [i, p] of images.entries()) {
    const n = ['a', 'b', 'c', 'unrouted'][i]!;
    fds.set(`sim-${n}-rw`, openSync(p, 'r+'));
    kinds.push(`sim-${n}-rw`, `sim-${n}-rw`, `sim-${n}-rw`);
    if (n !== 'unrouted') {
      fds.set(`sim-${n}-ro`, openSync(p, 'r'));
      kinds.push(`sim-${n}-ro`);
    }
  }
  return { dir, config, fds, kinds };
}

function expectSim(req: ModelRequest): ExpectedReply | null {
  if (req.direction === 'out' && req.fd.endsWith('-ro')) return { status: 2, sense: SENSE.INVALID_OPCODE, data: none };
  return null;
}

// ---------------------------------------------------------------------------
// Targets and sessions

export interface FuzzTarget {
  readonly name: string;
  readonly daemon: RunningDaemon;
  readonly profile: FdProfile;
  readonly fds: Map<string, number>;
  readonly expected: (req: ModelRequest) => ExpectedReply | null;
  /** Fake SG_IO devices this target can reach (checked through their logs). */
  readonly fake?: FakeSetup;
  baselineFds: number;
}

/**
 * qemu-pr-helper and a second SG_IO daemon of ours, both under the fake
 * target (a device set of their own, so the main target's SG_IO ledger stays
 * exact), fed the same cases on plain descriptors and scripted devices.
 */
export interface DifferentialPair {
  readonly ours: RunningDaemon;
  readonly reference: RunningDaemon;
  readonly fds: Map<string, number>;
  readonly profile: FdProfile;
}

export interface FuzzEnvironment {
  readonly targets: FuzzTarget[];
  readonly differential: DifferentialPair | null;
  close(): Promise<Array<{ name: string; exit: number | string }>>;
}

export async function setUpFuzzEnvironment(options: { differential: boolean; sockDir?: string }): Promise<FuzzEnvironment> {
  const sockDir = options.sockDir ?? mkdtempSync(join(tmpdir(), 'fuzz-sock-'));
  const plainDir = mkdtempSync(join(tmpdir(), 'fuzz-plain-'));
  const plainFds = openPlain(plainDir);
  const fake = setUpFakeDevices();
  const fake2 = options.differential ? setUpFakeDevices('fuzz-diff-') : null;
  const sim = setUpSimulation();
  const [sgioDaemon, simDaemon, diffOurs, reference] = await Promise.all([
    startDaemon(join(sockDir, 'sgio.sock'), ['-q'], { env: fakeTargetEnv(fake.dir) }),
    startDaemon(join(sockDir, 'sim.sock'), ['-q', '--simulate', sim.config]),
    fake2 ? startDaemon(join(sockDir, 'diff.sock'), ['-q'], { env: fakeTargetEnv(fake2.dir) }) : Promise.resolve(null),
    fake2 ? startProcess(QEMU_PR_HELPER, ['-k', join(sockDir, 'ref.sock')], join(sockDir, 'ref.sock'), { env: fakeTargetEnv(fake2.dir) }) : Promise.resolve(null),
  ]);
  const sgioFds = new Map([...plainFds, ...fake.fds]);
  const targets: FuzzTarget[] = [
    {
      name: 'sgio+fake-target',
      daemon: sgioDaemon,
      profile: { kinds: [...PLAIN_KINDS, ...fake.kinds, ...fake.kinds] },
      fds: sgioFds,
      expected: expectFake,
      fake,
      baselineFds: 0,
    },
    {
      name: 'simulate',
      daemon: simDaemon,
      profile: { kinds: sim.kinds, structuredParams: true },
      fds: sim.fds,
      expected: expectSim,
      baselineFds: 0,
    },
  ];
  const differential: DifferentialPair | null =
    fake2 && diffOurs && reference
      ? { ours: diffOurs, reference, fds: new Map([...plainFds, ...fake2.fds]), profile: { kinds: [...PLAIN_KINDS, ...fake2.kinds] } }
      : null;
  return {
    targets,
    differential,
    async close() {
      const exits = await Promise.all([
        ...targets.map(async (t) => ({ name: t.name, exit: await t.daemon.stop() })),
        ...(differential
          ? [
              differential.ours.stop().then((exit) => ({ name: 'sgio (differential)', exit })),
              differential.reference.stop().then((exit) => ({ name: 'qemu-pr-helper', exit })),
            ]
          : []),
      ]);
      for (const fds of [plainFds, fake.fds, sim.fds, fake2?.fds ?? new Map<string, number>()]) for (const fd of fds.values()) closeSync(fd);
      for (const d of [sockDir, plainDir, fake.dir, sim.dir, fake2?.dir]) if (d) rmSync(d, { recursive: true, force: true });
      return exits;
    },
  };
}

export interface Observed {
  readonly received: Buffer;
  readonly closedByServer: boolean;
}

/** Sends a case over a fresh connection, as its ending says. */
export async function runCase(socket: string, c: FuzzCase, fds: Map<string, number>, timeoutMs = 5000): Promise<Observed> {
  const peer = new RawPeer(socket);
  try {
    for (const s of c.segments) {
      const attached = s.fds.map((k) => {
        const fd = fds.get(k);
        if (fd === undefined) throw new Error(`no descriptor for kind ${k}`);
        return fd;
      });
      try {
        await peer.send(s.data, attached);
      } catch (err) {
        // The server closed on an earlier segment: that is part of the observation.
        if (native.isSystemError(err, 'EPIPE') || native.isSystemError(err, 'ECONNRESET')) break;
        throw err;
      }
    }
    if (c.ending === 'abort') return { received: Buffer.alloc(0), closedByServer: false };
    try {
      peer.endInput();
    } catch {
      // Already closed by the server.
    }
    const seen = await peer.observe(timeoutMs);
    return { received: peer.received(), closedByServer: seen.closedByServer };
  } finally {
    peer.close();
  }
}

export interface Failure {
  readonly target: string;
  readonly seed: number;
  readonly index: number;
  readonly problems: string[];
}

export interface SessionStats {
  cases: number;
  frames: number;
  requests: number;
  replies: number;
  closes: Record<string, number>;
  differentialCases: number;
  sgioCalls: number;
  failures: Failure[];
}

export function newStats(): SessionStats {
  return { cases: 0, frames: 0, requests: 0, replies: 0, closes: {}, differentialCases: 0, sgioCalls: 0, failures: [] };
}

function describeCase(c: FuzzCase): string {
  return c.segments.map((s) => `${s.data.toString('hex')}${s.fds.length ? `+[${s.fds.join(',')}]` : ''}`).join(' | ') + ` (${c.ending})`;
}

/** Expected SG_IO calls per fake device: those that must happen and those that may (aborted clients). */
class SgioLedger {
  private readonly must = new Map<string, Map<string, number>>();
  private readonly may = new Map<string, Map<string, number>>();

  add(req: ModelRequest, certain: boolean): void {
    const sig = sgioSignature(req);
    if (!sig) return;
    const table = certain ? this.must : this.may;
    const per = table.get(sig.device) ?? new Map<string, number>();
    per.set(sig.signature, (per.get(sig.signature) ?? 0) + 1);
    table.set(sig.device, per);
  }

  /** Compares with the fake target's logs and clears them. */
  settle(fake: FakeSetup): { problems: string[]; calls: number } {
    const problems: string[] = [];
    let calls = 0;
    for (const [name, dev] of fake.devices) {
      const recorded = new Map<string, number>();
      for (const call of dev.calls()) {
        calls++;
        if (call.cdb[0] !== 0x5e && call.cdb[0] !== 0x5f) problems.push(`${name}: opcode 0x${call.cdb[0]?.toString(16)} reached SG_IO: ${call.cdb.toString('hex')}`);
        if (call.cdb.length !== 16) problems.push(`${name}: cmd_len ${call.cdb.length}`);
        if (call.error) problems.push(`${name}: fake target rejected the call: ${call.error}`);
        // Spec 2.2: interface 'S', a 96-byte sense buffer.
        if (call.interfaceId !== 0x53 || call.mxSbLen !== 96) problems.push(`${name}: interface_id ${call.interfaceId}, mx_sb_len ${call.mxSbLen}`);
        const sig = `${call.cdb.toString('hex')} dir=${call.rawDirection} len=${call.dxferLen} out=${call.dataOut.toString('hex')}`;
        recorded.set(sig, (recorded.get(sig) ?? 0) + 1);
      }
      const must = this.must.get(name) ?? new Map<string, number>();
      const may = this.may.get(name) ?? new Map<string, number>();
      for (const sig of new Set([...recorded.keys(), ...must.keys()])) {
        const got = recorded.get(sig) ?? 0;
        const lo = must.get(sig) ?? 0;
        const hi = lo + (may.get(sig) ?? 0);
        if (got < lo || got > hi) problems.push(`${name}: SG_IO ${sig.slice(0, 120)} seen ${got} times, expected ${lo}..${hi}`);
      }
      dev.clearCalls();
    }
    this.must.clear();
    this.may.clear();
    return { problems, calls };
  }
}

/** Descriptor count of `pid` once it is back at `target` (or the count after a bounded wait). */
export async function fdCountBackTo(pid: number, target: number, timeoutMs = 5000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let now = countOpenFds(pid);
  while (now !== target && Date.now() < deadline) {
    await sleep(25);
    now = countOpenFds(pid);
  }
  return now;
}

function alive(d: RunningDaemon): boolean {
  return d.proc.exitCode === null && d.proc.signalCode === null;
}

/** Error-level (and worse) JSON log lines a daemon wrote since `from`. */
export function errorLines(d: RunningDaemon, from = 0): string[] {
  return d
    .stderr()
    .slice(from)
    .split('\n')
    .filter((l) => {
      if (!l.startsWith('{')) return l.trim() !== '';
      try {
        return Number((JSON.parse(l) as { level?: number }).level) >= 50;
      } catch {
        return true;
      }
    });
}

export interface BatchOptions {
  readonly seed: number;
  readonly firstIndex: number;
  readonly count: number;
  readonly concurrency: number;
}

/**
 * Runs cases firstIndex..firstIndex+count-1 of `seed` against `target`,
 * `concurrency` connections at a time, then checks the quiescent invariants
 * (alive, descriptor count, SG_IO log, error log).
 */
export async function runBatch(target: FuzzTarget, opts: BatchOptions, stats: SessionStats): Promise<void> {
  const ledger = new SgioLedger();
  const stderrFrom = target.daemon.stderr().length;
  let next = opts.firstIndex;
  const end = opts.firstIndex + opts.count;
  const worker = async (): Promise<void> => {
    while (next < end) {
      const index = next++;
      const c = generateCase(opts.seed, index, target.profile);
      const prediction = predict(c);
      stats.cases++;
      stats.frames += c.frames;
      stats.requests += prediction.requests.length;
      stats.closes[prediction.cause] = (stats.closes[prediction.cause] ?? 0) + 1;
      for (const req of prediction.requests) ledger.add(req, c.ending === 'half-close');
      let seen: Observed;
      try {
        seen = await runCase(target.daemon.socket, c, target.fds);
      } catch (err) {
        stats.failures.push({ target: target.name, seed: opts.seed, index, problems: [`client error ${(err as Error).message}`, describeCase(c)] });
        continue;
      }
      if (c.ending !== 'half-close') continue;
      const check = checkReplies(seen.received, prediction, target.expected);
      stats.replies += check.replies;
      const problems = [...check.problems];
      if (!seen.closedByServer) problems.push(`server did not close within 5 s (cause ${prediction.cause})`);
      if (problems.length > 0) stats.failures.push({ target: target.name, seed: opts.seed, index, problems: [...problems, describeCase(c)] });
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));

  const quiescent: string[] = [];
  if (!alive(target.daemon)) quiescent.push(`daemon died: ${target.daemon.stderr().slice(-2000)}`);
  else if (target.baselineFds > 0) {
    const fds = await fdCountBackTo(target.daemon.proc.pid!, target.baselineFds);
    if (fds !== target.baselineFds) quiescent.push(`daemon holds ${fds} descriptors, ${target.baselineFds} before the batch`);
  }
  if (target.fake) {
    const settled = ledger.settle(target.fake);
    stats.sgioCalls += settled.calls;
    quiescent.push(...settled.problems.slice(0, 20));
  }
  // Every error line is a finding: nothing a client sends is an error of the daemon.
  const errors = errorLines(target.daemon, stderrFrom);
  if (errors.length > 0) quiescent.push(`${errors.length} error log lines, first: ${errors[0]!.slice(0, 400)}`);
  if (quiescent.length > 0) {
    stats.failures.push({ target: target.name, seed: opts.seed, index: -1, problems: [`batch ${opts.firstIndex}..${end - 1}:`, ...quiescent] });
  }
}

/**
 * Differential: the same plain-descriptor case against ours and
 * qemu-pr-helper; the closure and every byte must match, and both must match
 * the model.
 */
export async function runDifferential(pair: DifferentialPair, opts: BatchOptions, stats: SessionStats): Promise<void> {
  const { ours, reference, fds, profile } = pair;
  for (let index = opts.firstIndex; index < opts.firstIndex + opts.count; index++) {
    const generated = generateCase(opts.seed, index, profile);
    // Differential cases always read the whole answer.
    const c: FuzzCase = { ...generated, ending: 'half-close' };
    const prediction = predict(c);
    stats.differentialCases++;
    stats.frames += c.frames;
    const [mine, raw] = await Promise.all([runCase(ours.socket, c, fds), runCase(reference.socket, c, fds)]);
    // qemu-pr-helper leaves sense bytes 18..95 of the read-only PR OUT reply
    // uninitialised (spec 1.5): stack contents, not protocol. Ours must send zeros there.
    const theirs = { ...raw, received: maskUninitialisedSense(raw.received, prediction) };
    const problems: string[] = [];
    const ownCheck = checkReplies(mine.received, prediction, expectFake);
    if (ownCheck.problems.length > 0) problems.push(`ours disagrees with the model: ${ownCheck.problems.join('; ')}`);
    if (mine.closedByServer !== theirs.closedByServer) problems.push(`closure differs: ours ${mine.closedByServer}, qemu-pr-helper ${theirs.closedByServer}`);
    if (!mine.received.equals(theirs.received)) {
      problems.push(`bytes differ: ours ${mine.received.length} bytes ${mine.received.toString('hex').slice(0, 240)}; qemu-pr-helper ${theirs.received.length} bytes ${theirs.received.toString('hex').slice(0, 240)}`);
    }
    const modelCheck = checkReplies(theirs.received, prediction, expectFake);
    if (modelCheck.problems.length > 0) problems.push(`qemu-pr-helper disagrees with the model: ${modelCheck.problems.join('; ')}`);
    if (problems.length > 0) stats.failures.push({ target: 'differential', seed: opts.seed, index, problems: [...problems, describeCase(c)] });
  }
  for (const [name, d] of [['qemu-pr-helper', reference], ['ours (differential)', ours]] as const) {
    if (!alive(d)) stats.failures.push({ target: 'differential', seed: opts.seed, index: -1, problems: [`${name} died: ${d.stderr().slice(-1000)}`] });
  }
  const errors = errorLines(ours);
  if (errors.length > 0) stats.failures.push({ target: 'differential', seed: opts.seed, index: -1, problems: [`ours logged errors: ${errors[0]!.slice(0, 400)}`] });
}

/**
 * Zeroes sense bytes 18..95 of every reply the model attributes to the
 * read-only PR OUT check (E7), where qemu-pr-helper does not initialise them.
 */
export function maskUninitialisedSense(received: Buffer, prediction: Prediction): Buffer {
  const out = Buffer.from(received);
  let p = 4;
  for (const req of prediction.requests) {
    if (out.length < p + 104) break;
    const size = Math.max(0, Math.min(out.readInt32BE(p + 4), 8192));
    if (req.direction === 'out' && isReadOnlyKind(req.fd)) out.fill(0, p + 8 + 18, p + 104);
    p += 104 + size;
  }
  return out;
}

/** Takes the descriptor baseline of every target after a short warm-up. */
export async function warmUp(env: FuzzEnvironment, seed: number): Promise<void> {
  const scratch = newStats();
  for (const t of env.targets) {
    await runBatch(t, { seed: seed ^ 0x5a5a5a5a, firstIndex: 0, count: 40, concurrency: 4 }, scratch);
    await sleep(100);
    t.baselineFds = await settleCount(t.daemon.proc.pid!);
  }
}

async function settleCount(pid: number): Promise<number> {
  let last = countOpenFds(pid);
  for (let stable = 0; stable < 5; ) {
    await sleep(30);
    const now = countOpenFds(pid);
    stable = now === last ? stable + 1 : 0;
    last = now;
  }
  return last;
}

export { QEMU_PR_HELPER };
