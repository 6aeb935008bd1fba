// The multipath I/O module (src/backend/multipath.ts) in-process, against a
// fake sysfs tree and a fake SAN: one logical unit (the project's SPC-4 PR
// engine, src/sim/pr-engine.ts) reached through three I_T nexuses. Node A's
// map dm-0 has the paths sda (initiator a1, target port 1) and sdb (a2, port 2);
// node B uses sdc (b1, port 3) directly. SG_IO is replaced by a function that
// routes each path's command to its nexus of the engine, with injectable path
// faults (errno, host_status, sense, delays). The real SG_IO / fd wiring is
// covered by multipath.socket.test.ts (LD_PRELOAD fake target) and the VM rig.
import { constants as fsConstants, closeSync, mkdirSync, mkdtempSync, openSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { open as openCallback } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MultipathRouter, pathUse, probeMap, splitDevice, type DeviceIdentity, type MultipathOptions } from '../../src/backend/multipath.js';
import type { BackendRequest } from '../../src/backend/backend.js';
import type { SgioResult } from '../../src/native/binding.js';
import type { CommandResult } from '../../src/protocol/response.js';
import { encodeTransportId, parseInitiatorName } from '../../src/scsi/transport-id.js';
import type { Nexus } from '../../src/sim/nexus.js';
import { PrEngine } from '../../src/sim/pr-engine.js';
import { basicParams, EA_RO, IN, PR_IN, prInCdb, prOutCdb, registerAndMoveParams, SA, WE_RO, type BasicParamsOptions } from '../fixtures/scsi-bytes.js';
import { sleep } from '../helpers/wait.js';

const GOOD = 0x00;
const CHECK = 0x02;
const CONFLICT = 0x18;

const KA = 0xa0a0n;
const KA2 = 0xa2a2n;
const KA3 = 0xa3a3n;
const KB = 0xb0b0n;

/** Fixed sense as hex of the first 14 bytes: 70 00 KEY 00 00 00 00 0a 00 00 00 00 ASC ASCQ. */
const senseHex = (key: number, asc: number, ascq: number): string =>
  Buffer.from([0x70, 0, key, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, asc, ascq]).toString('hex');

// ---------------------------------------------------------------------------
// Commands, as QEMU sends them (16-byte CDB)

function prIn(action: number, allocation = 8192): { cdb: Buffer; params: Buffer } {
  return { cdb: prInCdb(action, allocation), params: Buffer.alloc(0) };
}

/** A basic parameter list; a `length` under 24 sends that many zero bytes instead. */
function prOut(action: number, type: number, key: bigint, saKey: bigint, flags: Omit<BasicParamsOptions, 'key' | 'saKey'> = {}, length = 24): { cdb: Buffer; params: Buffer } {
  const params = length < 24 ? Buffer.alloc(length) : basicParams({ ...flags, key, saKey });
  return { cdb: prOutCdb(action, type, params.length), params };
}

const { READ_KEYS, READ_RESERVATION, READ_FULL_STATUS } = IN;
const { REGISTER, RESERVE, RELEASE, CLEAR, PREEMPT, PREEMPT_AND_ABORT, REGISTER_IGNORE: R_IEK } = SA;

// ---------------------------------------------------------------------------
// The fake SAN

interface Fault {
  errno?: number;
  hostStatus?: number;
  /** CHECK CONDITION with this fixed sense (key, asc, ascq). */
  sense?: [number, number, number];
  delayMs?: number;
  /** The device performs commands whose CDB (hex) starts with the prefix, then their answer is lost with the host_status. */
  lostAnswer?: { prefix: string; hostStatus: number };
}

class FakeSan {
  readonly engine = new PrEngine({ targetPorts: [1, 2, 3] });
  readonly nexus: Record<string, Nexus> = {
    sda: { initiator: parseInitiatorName('naa.50014050000000a1'), targetPort: 1 },
    sdb: { initiator: parseInitiatorName('naa.50014050000000a2'), targetPort: 2 },
    sdc: { initiator: parseInitiatorName('naa.50014050000000b1'), targetPort: 3 },
  };
  readonly faults = new Map<string, Fault>();
  /** Every SG_IO: path name, CDB (hex), direction, dxfer length. */
  readonly calls: Array<{ path: string; cdb: string; direction: number; length: number }> = [];
  inFlight = 0;
  maxInFlight = 0;

  /** Direct access for node B and for checks, bypassing the helper. */
  run(path: string, cmd: { cdb: Buffer; params: Buffer }) {
    return this.engine.execute(this.nexus[path]!, cmd.cdb, cmd.params);
  }

  /** Like run(), after consuming pending UNIT ATTENTIONs (a checker's view, not node B's history). */
  look(path: string, cmd: { cdb: Buffer; params: Buffer }) {
    for (;;) {
      const r = this.run(path, cmd);
      if (!(r.status === CHECK && r.sense?.[2] === 6)) return r;
    }
  }

  sgio = async (fd: number, cdb: Buffer, direction: number, data: Buffer | number, _timeout: number): Promise<SgioResult> => {
    const path = basename(readlinkSync(`/proc/self/fd/${fd}`));
    const length = typeof data === 'number' ? data : data.length;
    this.calls.push({ path, cdb: cdb.toString('hex'), direction, length });
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const fault = this.faults.get(path) ?? {};
      if (fault.delayMs) await sleep(fault.delayMs);
      const sense = Buffer.alloc(96);
      const base = { errno: 0, status: 0, maskedStatus: 0, hostStatus: 0, driverStatus: 0, resid: 0, senseLength: 0, sense, durationNs: 0 };
      const inData = typeof data === 'number' ? Buffer.alloc(data) : undefined;
      const withData = (r: typeof base) => (inData ? { ...r, data: inData } : r);
      if (fault.errno) return withData({ ...base, errno: fault.errno });
      if (fault.hostStatus) return withData({ ...base, hostStatus: fault.hostStatus });
      if (fault.sense) {
        Buffer.from(senseHex(...fault.sense), 'hex').copy(sense);
        return withData({ ...base, status: CHECK, driverStatus: 0x08, senseLength: 18 });
      }
      const nexus = this.nexus[path];
      if (!nexus) return withData({ ...base, errno: 25 });
      const r = this.engine.execute(nexus, cdb, typeof data === 'number' ? Buffer.alloc(0) : data);
      if (fault.lostAnswer && cdb.toString('hex').startsWith(fault.lostAnswer.prefix)) return withData({ ...base, hostStatus: fault.lostAnswer.hostStatus });
      if (r.sense) r.sense.copy(sense);
      if (inData) r.data.copy(inData);
      return withData({ ...base, status: r.status, resid: inData ? inData.length - r.data.length : 0, driverStatus: r.sense ? 0x08 : 0 });
    } finally {
      this.inFlight--;
    }
  };
}

// ---------------------------------------------------------------------------
// The fake sysfs tree and device directory

const IDENTITIES: Record<string, DeviceIdentity> = {
  'dm-0': { block: true, major: 254, minor: 0 },
  'dm-1': { block: true, major: 254, minor: 1 },
  'dm-2': { block: true, major: 254, minor: 2 },
  sda: { block: true, major: 8, minor: 0 },
  sdb: { block: true, major: 8, minor: 16 },
  sdc: { block: true, major: 8, minor: 32 },
  sdd: { block: true, major: 8, minor: 48 },
  sde: { block: true, major: 8, minor: 64 },
  plain: { block: false, major: 0, minor: 0 },
};

interface Tree {
  root: string;
  sysfs: string;
  dev: string;
  setState(path: string, state: string): void;
}

function makeTree(): Tree {
  const root = mkdtempSync(join(tmpdir(), 'mpath-unit-'));
  const sysfs = join(root, 'sys');
  const dev = join(root, 'dev');
  mkdirSync(dev);
  for (const name of Object.keys(IDENTITIES)) writeFileSync(join(dev, name), '');
  const blockDev = (name: string) => {
    const id = IDENTITIES[name]!;
    const dir = join(sysfs, 'dev', 'block', `${id.major}:${id.minor}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  };
  const disk = (name: string, state: string | null) => {
    const id = IDENTITIES[name]!;
    mkdirSync(join(sysfs, 'block', name, 'device'), { recursive: true });
    writeFileSync(join(sysfs, 'block', name, 'dev'), `${id.major}:${id.minor}\n`);
    if (state !== null) writeFileSync(join(sysfs, 'block', name, 'device', 'state'), `${state}\n`);
    blockDev(name);
  };
  const map = (name: string, uuid: string, dmName: string, slaves: string[]) => {
    const dir = blockDev(name);
    mkdirSync(join(dir, 'dm'));
    writeFileSync(join(dir, 'dm', 'uuid'), `${uuid}\n`);
    writeFileSync(join(dir, 'dm', 'name'), `${dmName}\n`);
    mkdirSync(join(dir, 'slaves'));
    for (const s of slaves) writeFileSync(join(dir, 'slaves', s), '');
  };
  for (const d of ['sda', 'sdb', 'sdc']) disk(d, 'running');
  disk('sdd', 'running');
  disk('sde', null); // a slave without a SCSI device state
  map('dm-0', 'mpath-3600140500000000000000000000000a1', 'mpatha', ['sdb', 'sda']);
  map('dm-1', 'LVM-abcdef', 'vg-lv', ['sdd']); // device-mapper, but not multipath
  map('dm-2', 'mpath-empty', 'mpathempty', []);
  return {
    root,
    sysfs,
    dev,
    setState: (path, state) => writeFileSync(join(sysfs, 'block', path, 'device', 'state'), `${state}\n`),
  };
}

const identifyFake = (fd: number): DeviceIdentity | null => IDENTITIES[basename(readlinkSync(`/proc/self/fd/${fd}`))] ?? null;

interface Harness {
  tree: Tree;
  san: FakeSan;
  router: MultipathRouter;
  logs: Array<Record<string, unknown>>;
  /** Sends one request with a fresh fd of dev/<device>. */
  send(device: string, cmd: { cdb: Buffer; params: Buffer }): Promise<CommandResult | null>;
}

function makeHarness(over: Partial<MultipathOptions> = {}): Harness {
  const tree = makeTree();
  const san = new FakeSan();
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const router = new MultipathRouter({
    timeoutMs: 30_000,
    log: pino({ level: 'debug' }, sink),
    sysfsRoot: tree.sysfs,
    devRoot: tree.dev,
    sgio: san.sgio,
    identify: identifyFake,
    pollIntervalMs: 0, // the tests call poll() themselves
    ...over,
  });
  const send = async (device: string, cmd: { cdb: Buffer; params: Buffer }) => {
    const fd = openSync(join(tree.dev, device), fsConstants.O_RDWR);
    try {
      const request: BackendRequest = {
        cdb: cmd.cdb,
        direction: cmd.cdb[0] === PR_IN ? 'in' : 'out',
        transferLength: cmd.cdb.readUInt16BE(7),
        params: cmd.params,
        fd,
        peer: { pid: 1, uid: 0, gid: 0 },
      };
      return await router.execute(request);
    } finally {
      closeSync(fd);
    }
  };
  return { tree, san, router, logs, send };
}

const status = (r: CommandResult | null): number => {
  expect(r).not.toBeNull();
  return r!.status;
};
const senseOf = (r: CommandResult | null): string => Buffer.from(r!.sense ?? Buffer.alloc(18)).subarray(0, 14).toString('hex');

/** Keys per nexus from READ FULL STATUS on node B's nexus (the other cluster node's view). */
function fullStatus(san: FakeSan): Array<{ key: bigint; port: number; holder: boolean }> {
  const r = san.look('sdc', prIn(READ_FULL_STATUS));
  expect(r.status).toBe(GOOD);
  const out: Array<{ key: bigint; port: number; holder: boolean }> = [];
  const end = 8 + r.data.readUInt32BE(4);
  for (let at = 8; at < end; ) {
    out.push({ key: r.data.readBigUInt64BE(at), port: r.data.readUInt16BE(at + 18), holder: (r.data[at + 12]! & 1) === 1 });
    at += 24 + r.data.readUInt32BE(at + 20);
  }
  return out.sort((a, b) => a.port - b.port);
}

/** The relative target ports registered with `key`, as node B sees them. */
function portsWithKey(san: FakeSan, key: bigint): number[] {
  return fullStatus(san).filter((d) => d.key === key).map((d) => d.port);
}

/** A harness in which node B (sdc) is registered with KB. */
function harnessWithNodeB(over: Partial<MultipathOptions> = {}): Harness {
  const h = makeHarness(over);
  expect(h.san.run('sdc', prOut(REGISTER, 0, 0n, KB)).status).toBe(GOOD);
  return h;
}

function reservation(san: FakeSan): { key: bigint; type: number } | null {
  const r = san.look('sdc', prIn(READ_RESERVATION));
  if (r.data.readUInt32BE(4) === 0) return null;
  return { key: r.data.readBigUInt64BE(8), type: r.data[21]! & 0x0f };
}

// ---------------------------------------------------------------------------

describe('detection', () => {
  let h: Harness;
  beforeEach(() => (h = makeHarness()));
  afterEach(() => rmSync(h.tree.root, { recursive: true, force: true }));

  it('splits Linux dev_t like glibc (including large majors/minors)', () => {
    expect(splitDevice(0xfe00)).toEqual({ major: 254, minor: 0 });
    expect(splitDevice(0x0810)).toEqual({ major: 8, minor: 16 });
    // major 259 (blkext), minor 300: (300 & 0xff) | ((259 & 0xfff) << 8) | ((300 & ~0xff) << 12)
    expect(splitDevice((300 & 0xff) | (259 << 8) | ((300 & ~0xff) << 12))).toEqual({ major: 259, minor: 300 });
  });

  it.each([
    ['not a block device', 'plain'],
    ['a block device without device-mapper', 'sdc'],
    ['a device-mapper device that is not multipath (uuid LVM-...)', 'dm-1'],
  ])('%s -> null (the single-path backend serves it)', async (_n, device) => {
    expect(await h.send(device, prIn(READ_KEYS))).toBeNull();
    expect(h.san.calls).toEqual([]);
  });

  it('reads the map, its slaves (sorted) and their states from sysfs', async () => {
    h.tree.setState('sdb', 'offline');
    const probe = probeMap({ block: true, major: 254, minor: 0 }, h.tree.sysfs, h.tree.dev);
    expect(probe).toEqual({
      kind: 'map',
      map: {
        devno: '254:0',
        name: 'mpatha',
        uuid: 'mpath-3600140500000000000000000000000a1',
        paths: [
          { name: 'sda', node: join(h.tree.dev, 'sda'), devno: '8:0', state: 'running', host: null, use: 'first' },
          { name: 'sdb', node: join(h.tree.dev, 'sdb'), devno: '8:16', state: 'offline', host: null, use: 'never' },
        ],
      },
    });
  });

  it.each([
    ['running', 'first'],
    [null, 'later'],
    ['blocked', 'last-resort'],
    ['quiesce', 'last-resort'],
    ['offline', 'never'],
    ['transport-offline', 'never'],
    ['deleted', 'never'],
  ] as const)('device state %s -> %s', (state, use) => expect(pathUse(state)).toBe(use));

  it('unreadable device-mapper state: warning, then the single-path backend (no crash)', async () => {
    const uuid = join(h.tree.sysfs, 'dev', 'block', '254:0', 'dm', 'uuid');
    rmSync(uuid);
    mkdirSync(uuid); // reading it now fails with EISDIR
    expect(await h.send('dm-0', prIn(READ_KEYS))).toBeNull();
    expect(h.logs.some((l) => l['level'] === 40 && String(l['msg']).includes('cannot read the device-mapper state'))).toBe(true);
  });

  it('a map without paths: LOGICAL UNIT COMMUNICATION FAILURE', async () => {
    const r = await h.send('dm-2', prIn(READ_KEYS));
    expect(status(r)).toBe(CHECK);
    expect(senseOf(r)).toBe(senseHex(0x0b, 0x08, 0x00));
  });

  it('is probed on every request: a path added to the map is used at once', async () => {
    const slaves = join(h.tree.sysfs, 'dev', 'block', '254:0', 'slaves');
    rmSync(join(slaves, 'sda'));
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, 0n, KA)))).toBe(GOOD);
    expect(fullStatus(h.san).map((d) => d.port)).toEqual([2]);
    writeFileSync(join(slaves, 'sda'), '');
    expect(status(await h.send('dm-0', prOut(R_IEK, 0, 0n, KA)))).toBe(GOOD);
    expect(fullStatus(h.san).map((d) => d.port)).toEqual([1, 2]);
  });
});

describe('PR IN through one working path', () => {
  let h: Harness;
  beforeEach(() => {
    h = makeHarness();
    h.san.run('sdc', prOut(REGISTER, 0, 0n, KB));
  });
  afterEach(() => rmSync(h.tree.root, { recursive: true, force: true }));

  it('all four service actions, data as the device returns it (READ FULL STATUS included)', async () => {
    for (const action of [0, 1, 2, 3]) {
      const r = await h.send('dm-0', prIn(action));
      const direct = h.san.run('sdc', prIn(action));
      expect(status(r)).toBe(GOOD);
      expect(Buffer.from(r!.data!).toString('hex')).toBe(direct.data.toString('hex'));
    }
    // One path each time, the first running one, reading the full 8 KiB like the original.
    expect(h.san.calls.map((c) => [c.path, c.length])).toEqual([
      ['sda', 8192],
      ['sda', 8192],
      ['sda', 8192],
      ['sda', 8192],
    ]);
  });

  it('the allocation length limits the data', async () => {
    const r = await h.send('dm-0', prIn(READ_KEYS, 12));
    expect(Buffer.from(r!.data!).toString('hex')).toBe('000000010000000800000000');
  });

  it('an offline path is not tried', async () => {
    h.tree.setState('sda', 'offline');
    expect(status(await h.send('dm-0', prIn(READ_KEYS)))).toBe(GOOD);
    expect(h.san.calls.map((c) => c.path)).toEqual(['sdb']);
  });

  it.each([
    ['host_status TRANSPORT_DISRUPTED', { hostStatus: 0x0e }],
    ['errno ENODEV', { errno: 19 }],
    ['ALUA standby sense', { sense: [2, 4, 0x0b] as [number, number, number] }],
  ])('moves on after a transport failure: %s', async (_n, fault) => {
    h.san.faults.set('sda', fault);
    const r = await h.send('dm-0', prIn(READ_KEYS));
    expect(status(r)).toBe(GOOD);
    expect(h.san.calls.map((c) => c.path)).toEqual(['sda', 'sdb']);
    expect(h.logs.some((l) => l['msg'] === 'path failed; using the other paths of the map' && l['path'] === 'sda')).toBe(true);
  });

  it('every path failing: the last failure, mapped like the single-path backend', async () => {
    h.san.faults.set('sda', { hostStatus: 0x01 });
    h.san.faults.set('sdb', { hostStatus: 0x0e });
    const r = await h.send('dm-0', prIn(READ_KEYS));
    expect(status(r)).toBe(CHECK);
    expect(senseOf(r)).toBe(senseHex(0x0b, 0x29, 0x07));
  });

  it('UNIT ATTENTION is the device\'s answer: passed on, not retried elsewhere', async () => {
    h.san.faults.set('sda', { sense: [6, 0x2a, 0x05] });
    const r = await h.send('dm-0', prIn(READ_KEYS));
    expect(senseOf(r)).toBe(senseHex(6, 0x2a, 0x05));
    expect(h.san.calls.map((c) => c.path)).toEqual(['sda']);
  });

  it('a blocked path is tried only when nothing else answered', async () => {
    h.tree.setState('sda', 'blocked');
    h.san.faults.set('sdb', { hostStatus: 0x01 });
    expect(status(await h.send('dm-0', prIn(READ_KEYS)))).toBe(GOOD);
    expect(h.san.calls.map((c) => c.path)).toEqual(['sdb', 'sda']);
  });
});

describe('PR OUT: the map behaves like one nexus', () => {
  let h: Harness;
  beforeEach(() => (h = harnessWithNodeB()));
  afterEach(() => rmSync(h.tree.root, { recursive: true, force: true }));

  const registeredPorts = (key: bigint) => portsWithKey(h.san, key);

  it('REGISTER reaches every path; node B sees both nexuses with the key', async () => {
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, 0n, KA)))).toBe(GOOD);
    expect(fullStatus(h.san)).toEqual([
      { key: KA, port: 1, holder: false },
      { key: KA, port: 2, holder: false },
      { key: KB, port: 3, holder: false },
    ]);
    // Both paths got the guest's CDB and parameters verbatim.
    const outs = h.san.calls.filter((c) => c.cdb.startsWith('5f'));
    expect(outs.map((c) => c.path).sort()).toEqual(['sda', 'sdb']);
    expect(outs.every((c) => c.length === 24 && c.cdb.length === 32)).toBe(true);
  });

  it('REGISTER with RK 0 on a registered map: RESERVATION CONFLICT, like a single-path LUN', async () => {
    await h.send('dm-0', prOut(REGISTER, 0, 0n, KA));
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, 0n, KA2)))).toBe(CONFLICT);
    expect(registeredPorts(KA)).toEqual([1, 2]);
  });

  it('ALL_TG_PT: one path per SCSI host (one registration covers the initiator port), like libmpathpersist', async () => {
    // Both paths on SCSI host 3, as with one FC HBA port reaching two target ports.
    for (const [path, hctl] of [['sda', '3:0:0:0'], ['sdb', '3:0:1:0']] as const) {
      const device = join(h.tree.sysfs, 'block', path, 'device');
      const real = join(h.tree.sysfs, 'devices', hctl);
      mkdirSync(real, { recursive: true });
      writeFileSync(join(real, 'state'), 'running\n');
      rmSync(device, { recursive: true });
      symlinkSync(`../../devices/${hctl}`, device);
    }
    expect(probeMap({ block: true, major: 254, minor: 0 }, h.tree.sysfs, h.tree.dev)).toMatchObject({
      map: { paths: [{ name: 'sda', host: 3, state: 'running' }, { name: 'sdb', host: 3, state: 'running' }] },
    });
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, 0n, KA, { allTgPt: true })))).toBe(GOOD);
    expect(h.san.calls.filter((c) => c.cdb.startsWith('5f')).map((c) => c.path)).toEqual(['sda']);
    h.san.calls.length = 0;
    expect(status(await h.send('dm-0', prOut(R_IEK, 0, 0n, KA2)))).toBe(GOOD); // without ALL_TG_PT: every path
    expect(h.san.calls.filter((c) => c.cdb.startsWith('5f')).map((c) => c.path).sort()).toEqual(['sda', 'sdb']);
  });

  it('R&IEK registers and unregisters on every path', async () => {
    expect(status(await h.send('dm-0', prOut(R_IEK, 0, 0n, KA)))).toBe(GOOD);
    expect(registeredPorts(KA)).toEqual([1, 2]);
    expect(status(await h.send('dm-0', prOut(R_IEK, 0, 0n, 0n)))).toBe(GOOD);
    expect(fullStatus(h.san).map((d) => d.port)).toEqual([3]);
  });

  it('a path that lost its registration behind the daemon\'s back gets the new key on the next REGISTER (R&IEK repair)', async () => {
    await h.send('dm-0', prOut(REGISTER, 0, 0n, KA));
    expect(h.san.run('sdb', prOut(R_IEK, 0, 0n, 0n)).status).toBe(GOOD); // e.g. a new nexus after a relogin
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, KA, KA2)))).toBe(GOOD); // sdb: conflict, repaired
    expect(registeredPorts(KA2)).toEqual([1, 2]);
    expect(h.logs.some((l) => l['msg'] === 'paths of the map re-registered' && l['why'] === 'missed-registration')).toBe(true);
  });

  it('a path that was offline during a key change gets the new key before the next command uses it', async () => {
    await h.send('dm-0', prOut(REGISTER, 0, 0n, KA));
    h.tree.setState('sdb', 'offline');
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, KA, KA2)))).toBe(GOOD); // sdb keeps KA
    expect(fullStatus(h.san).filter((d) => d.port !== 3).map((d) => d.key)).toEqual([KA2, KA]);
    h.tree.setState('sdb', 'running');
    h.san.calls.length = 0;
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, KA2, KA3)))).toBe(GOOD);
    expect(registeredPorts(KA3)).toEqual([1, 2]);
    // sdb got KA2 back before the guest's REGISTER went down it, so the REGISTER found no stale path.
    const guestRegister = h.san.calls.findIndex((c) => c.cdb.startsWith('5f00') && c.path === 'sdb' && c.length === 24 && c.cdb.length === 32);
    const repairOnSdb = h.san.calls.findIndex((c) => c.cdb.startsWith('5f06') && c.path === 'sdb');
    expect(repairOnSdb).toBeGreaterThanOrEqual(0);
    expect(repairOnSdb).toBeLessThan(guestRegister);
    expect(h.logs.some((l) => l['msg'] === 'paths of the map re-registered')).toBe(false);
  });

  it('unregistering with a path that never had the key: GOOD, nothing left', async () => {
    h.tree.setState('sdb', 'offline');
    await h.send('dm-0', prOut(REGISTER, 0, 0n, KA));
    h.tree.setState('sdb', 'running');
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, KA, 0n)))).toBe(GOOD);
    expect(fullStatus(h.san).map((d) => d.port)).toEqual([3]);
  });

  it('a transport failure during REGISTER: GOOD through the other path', async () => {
    h.san.faults.set('sda', { hostStatus: 0x0e });
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, 0n, KA)))).toBe(GOOD);
    expect(registeredPorts(KA)).toEqual([2]);
  });

  it('RESERVE, node B sees the reservation; a repeated RESERVE is GOOD whichever path carries it', async () => {
    await h.send('dm-0', prOut(REGISTER, 0, 0n, KA));
    expect(status(await h.send('dm-0', prOut(RESERVE, WE_RO, KA, 0n)))).toBe(GOOD);
    expect(reservation(h.san)).toEqual({ key: KA, type: WE_RO });
    expect(fullStatus(h.san).find((d) => d.holder)?.port).toBe(1);
    h.san.faults.set('sda', { hostStatus: 0x0e }); // the holder's path fails: sdb carries it, gets CONFLICT,
    expect(status(await h.send('dm-0', prOut(RESERVE, WE_RO, KA, 0n)))).toBe(GOOD); // but the holder is ours
    expect(status(await h.send('dm-0', prOut(RESERVE, EA_RO, KA, 0n)))).toBe(CONFLICT); // another type is not
  });

  it('RESERVE goes on to the next path after RESERVATION CONFLICT (the holder may be there)', async () => {
    await h.send('dm-0', prOut(REGISTER, 0, 0n, KA));
    expect(h.san.run('sdb', prOut(RESERVE, WE_RO, KA, 0n)).status).toBe(GOOD); // held through sdb's nexus
    h.san.calls.length = 0;
    expect(status(await h.send('dm-0', prOut(RESERVE, WE_RO, KA, 0n)))).toBe(GOOD);
    expect(h.san.calls.filter((c) => c.cdb.startsWith('5f01')).map((c) => c.path)).toEqual(['sda', 'sdb']);
  });

  it('node B preempts A: A\'s next command sees the UNIT ATTENTION once; A re-registers on both paths', async () => {
    await h.send('dm-0', prOut(REGISTER, 0, 0n, KA));
    await h.send('dm-0', prOut(RESERVE, WE_RO, KA, 0n));
    expect(h.san.run('sdc', prOut(PREEMPT, WE_RO, KB, KA)).status).toBe(GOOD);
    expect(reservation(h.san)).toEqual({ key: KB, type: WE_RO });
    const r = await h.send('dm-0', prIn(READ_KEYS));
    expect(senseOf(r)).toBe(senseHex(6, 0x2a, 0x05)); // REGISTRATIONS PREEMPTED, through sda
    // sdb still holds its UA: the fan-out retries it there instead of failing half-way.
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, 0n, KA)))).toBe(GOOD);
    expect(registeredPorts(KA)).toEqual([1, 2]);
    // A takes the reservation back.
    expect(status(await h.send('dm-0', prOut(PREEMPT, WE_RO, KA, KB)))).toBe(GOOD);
    expect(reservation(h.san)).toEqual({ key: KA, type: WE_RO });
    expect(fullStatus(h.san).map((d) => d.port)).toEqual([1, 2]);
  });

  it('PREEMPT of our own key (type change) keeps every path registered, like the single nexus it stands for', async () => {
    await h.send('dm-0', prOut(REGISTER, 0, 0n, KA));
    await h.send('dm-0', prOut(RESERVE, WE_RO, KA, 0n));
    expect(status(await h.send('dm-0', prOut(PREEMPT, EA_RO, KA, KA)))).toBe(GOOD);
    expect(reservation(h.san)).toEqual({ key: KA, type: EA_RO });
    expect(registeredPorts(KA)).toEqual([1, 2]);
    // The repair consumed the REGISTRATIONS PREEMPTED attention the device queued for sdb.
    h.tree.setState('sda', 'offline');
    expect(status(await h.send('dm-0', prIn(READ_KEYS)))).toBe(GOOD);
  });

  it('RELEASE from the map releases whichever path\'s nexus holds it', async () => {
    await h.send('dm-0', prOut(REGISTER, 0, 0n, KA));
    expect(h.san.run('sdb', prOut(RESERVE, WE_RO, KA, 0n)).status).toBe(GOOD);
    expect(status(await h.send('dm-0', prOut(RELEASE, WE_RO, KA, 0n)))).toBe(GOOD);
    expect(reservation(h.san)).toBeNull();
  });

  it('RELEASE by a non-holder (node B holds it): GOOD, nothing changes', async () => {
    await h.send('dm-0', prOut(REGISTER, 0, 0n, KA));
    h.san.run('sdc', prOut(RESERVE, WE_RO, KB, 0n));
    expect(status(await h.send('dm-0', prOut(RELEASE, WE_RO, KA, 0n)))).toBe(GOOD);
    expect(reservation(h.san)).toEqual({ key: KB, type: WE_RO });
  });

  it('RELEASE with the wrong type: the holder\'s own answer (05/26/04 from this device)', async () => {
    await h.send('dm-0', prOut(REGISTER, 0, 0n, KA));
    await h.send('dm-0', prOut(RESERVE, WE_RO, KA, 0n));
    const r = await h.send('dm-0', prOut(RELEASE, EA_RO, KA, 0n));
    expect(senseOf(r)).toBe(senseHex(5, 0x26, 0x04));
    expect(reservation(h.san)).toEqual({ key: KA, type: WE_RO });
  });

  it('RELEASE while the holder\'s path is offline: the reservation is moved to a reachable path and released', async () => {
    await h.send('dm-0', prOut(REGISTER, 0, 0n, KA));
    await h.send('dm-0', prOut(RESERVE, WE_RO, KA, 0n)); // held through sda
    h.tree.setState('sda', 'offline');
    expect(status(await h.send('dm-0', prOut(RELEASE, WE_RO, KA, 0n)))).toBe(GOOD);
    expect(reservation(h.san)).toBeNull();
    // The device dropped the unreachable path's registration with the PREEMPT; sdb keeps the key.
    expect(registeredPorts(KA)).toEqual([2]);
    expect(h.logs.some((l) => String(l['msg']).startsWith('RELEASE: the reservation holder is an unreachable path'))).toBe(true);
  });

  it('REGISTER AND MOVE (refused by the original) goes to the holder\'s path; with UNREG the map\'s other path is unregistered too', async () => {
    await h.send('dm-0', prOut(REGISTER, 0, 0n, KA));
    expect(h.san.run('sdb', prOut(RESERVE, WE_RO, KA, 0n)).status).toBe(GOOD); // holder: sdb's nexus
    const tid = encodeTransportId(h.san.nexus['sdc']!.initiator);
    // To node B's relative target port, unregistering the sender.
    const params = registerAndMoveParams({ key: KA, saKey: KB, unreg: true, relativeTargetPort: 3, transportId: tid });
    const cdb = prOutCdb(0x07, 0, params.length);
    h.san.calls.length = 0;
    expect(status(await h.send('dm-0', { cdb, params }))).toBe(GOOD);
    // sda: not the holder (CONFLICT), sdb: moved it; then sda unregistered by a repair.
    expect(h.san.calls.filter((c) => c.cdb.startsWith('5f07')).map((c) => c.path)).toEqual(['sda', 'sdb']);
    expect(reservation(h.san)).toEqual({ key: KB, type: WE_RO });
    expect(fullStatus(h.san)).toEqual([{ key: KB, port: 3, holder: true }]);
  });

  it('CLEAR through one path clears everything', async () => {
    await h.send('dm-0', prOut(REGISTER, 0, 0n, KA));
    await h.send('dm-0', prOut(RESERVE, WE_RO, KA, 0n));
    expect(status(await h.send('dm-0', prOut(CLEAR, 0, KA, 0n)))).toBe(GOOD);
    expect(fullStatus(h.san)).toEqual([]);
    expect(reservation(h.san)).toBeNull();
  });

  it('PR OUT with every path failing: the failure; with none reachable: LUN COMMUNICATION FAILURE', async () => {
    h.san.faults.set('sda', { hostStatus: 0x01 });
    h.san.faults.set('sdb', { hostStatus: 0x01 });
    const r = await h.send('dm-0', prOut(REGISTER, 0, 0n, KA));
    expect(senseOf(r)).toBe(senseHex(0x0b, 0x05, 0x00));
    h.tree.setState('sda', 'offline');
    h.tree.setState('sdb', 'offline');
    expect(senseOf(await h.send('dm-0', prOut(RESERVE, WE_RO, KA, 0n)))).toBe(senseHex(0x0b, 0x08, 0x00));
  });

  it.each([0, 8, 23])('parameter list of %i bytes: PARAMETER LIST LENGTH ERROR, no path touched', async (n) => {
    const r = await h.send('dm-0', prOut(REGISTER, 0, 0n, KA, {}, n));
    expect(senseOf(r)).toBe(senseHex(5, 0x1a, 0x00));
    expect(h.san.calls).toEqual([]);
  });
});

describe('keeping every path on the map key', () => {
  let h: Harness;
  beforeEach(() => (h = harnessWithNodeB()));
  afterEach(() => rmSync(h.tree.root, { recursive: true, force: true }));

  const registeredPorts = (key: bigint) => portsWithKey(h.san, key);
  /** PR OUTs the daemon built itself (10-byte CDB), as "path:service action". */
  const daemonOuts = () => h.san.calls.filter((c) => c.cdb.startsWith('5f') && c.cdb.length === 20).map((c) => `${c.path}:${parseInt(c.cdb.slice(2, 4), 16) & 0x1f}`);
  const guestOuts = () => h.san.calls.filter((c) => c.cdb.startsWith('5f') && c.cdb.length === 32).map((c) => `${c.path}:${parseInt(c.cdb.slice(2, 4), 16) & 0x1f}`);
  const daemonAudit = () => h.logs.filter((l) => l['origin'] === 'daemon');

  /** Registers KA through the map, takes sdb offline, changes the key to KA2: sdb keeps KA. */
  async function keyChangeWhileSdbOffline(): Promise<void> {
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, 0n, KA)))).toBe(GOOD);
    h.tree.setState('sdb', 'offline');
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, KA, KA2)))).toBe(GOOD);
    expect(fullStatus(h.san).filter((d) => d.port !== 3).map((d) => d.key)).toEqual([KA2, KA]);
  }

  it('a path that comes back gets the key it missed from the poll, with no command from the guest, and an audit line', async () => {
    await keyChangeWhileSdbOffline();
    await h.router.poll(); // still offline: nothing to do
    expect(registeredPorts(KA2)).toEqual([1]);
    h.tree.setState('sdb', 'running');
    h.san.calls.length = 0;
    await h.router.poll();
    await vi.waitFor(() => expect(registeredPorts(KA2)).toEqual([1, 2]));
    expect(registeredPorts(KA)).toEqual([]);
    expect(daemonOuts()).toEqual(['sdb:0', 'sdb:6']); // the carries-the-key check conflicts, then R&IEK
    const line = daemonAudit().find((l) => l['action'] === 'REGISTER AND IGNORE EXISTING KEY');
    expect(line).toMatchObject({ origin: 'daemon', dev: 'sdb', mpath: 'mpatha', dm: '254:0', status: 'GOOD', why: 'path usable again without the map key', level: 30 });
    // Checked and carrying: the next poll sends nothing.
    h.san.calls.length = 0;
    await h.router.poll();
    expect(h.san.calls).toEqual([]);
  });

  it('the interval timer runs the poll (no test hook needed in the daemon)', async () => {
    const ticks: Array<() => void> = [];
    rmSync(h.tree.root, { recursive: true, force: true }); // replaced by one with other options
    h = harnessWithNodeB({ pollIntervalMs: 2000, every: (ms, tick) => (expect(ms).toBe(2000), ticks.push(tick), () => ticks.splice(0)) });
    await keyChangeWhileSdbOffline();
    h.tree.setState('sdb', 'running');
    ticks[0]!();
    await vi.waitFor(() => expect(registeredPorts(KA2)).toEqual([1, 2]));
    h.router.close();
    expect(ticks).toEqual([]);
  });

  it('a path that joins the map is registered with the key', async () => {
    h.san.nexus['sdd'] = { initiator: parseInitiatorName('naa.50014050000000a3'), targetPort: 2 };
    expect(status(await h.send('dm-0', prOut(R_IEK, 0, 0n, KA)))).toBe(GOOD);
    writeFileSync(join(h.tree.sysfs, 'dev', 'block', '254:0', 'slaves', 'sdd'), '');
    await h.router.poll();
    await vi.waitFor(() => expect(fullStatus(h.san).filter((d) => d.key === KA)).toHaveLength(3));
    expect(daemonAudit().some((l) => l['dev'] === 'sdd' && l['action'] === 'REGISTER AND IGNORE EXISTING KEY' && l['status'] === 'GOOD')).toBe(true);
  });

  it('a path that comes back after the map was unregistered loses its old key', async () => {
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, 0n, KA)))).toBe(GOOD);
    h.tree.setState('sdb', 'offline');
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, KA, 0n)))).toBe(GOOD);
    expect(registeredPorts(KA)).toEqual([2]);
    h.tree.setState('sdb', 'running');
    await h.router.poll();
    await vi.waitFor(() => expect(registeredPorts(KA)).toEqual([]));
    expect(fullStatus(h.san).map((d) => d.port)).toEqual([3]);
  });

  it('a key another node preempted is not registered again on a returning path (that would undo the fence)', async () => {
    await keyChangeWhileSdbOffline(); // sda: KA2, sdb: KA (stale)
    expect(h.san.run('sdc', prOut(PREEMPT, WE_RO, KB, KA2)).status).toBe(GOOD); // node B fences the map's key
    h.tree.setState('sdb', 'running');
    await h.router.poll();
    await vi.waitFor(() => expect(h.logs.some((l) => String(l['msg']).includes('no longer registered on the device'))).toBe(true));
    expect(registeredPorts(KA2)).toEqual([]);
    expect(daemonOuts().filter((o) => o.endsWith(':6'))).toEqual([]);
    // Forgotten: later polls leave the map alone.
    h.san.calls.length = 0;
    await h.router.poll();
    expect(h.san.calls).toEqual([]);
  });

  it('a command waiting for a repair that hangs goes on without that path after repairWaitMs', async () => {
    rmSync(h.tree.root, { recursive: true, force: true }); // replaced by one with other options
    h = harnessWithNodeB({ repairWaitMs: 50 });
    await keyChangeWhileSdbOffline();
    h.tree.setState('sdb', 'running');
    h.san.faults.set('sdb', { delayMs: 3000 });
    h.san.calls.length = 0;
    await h.router.poll(); // starts sdb's re-registration
    const r = await h.send('dm-0', prIn(READ_KEYS));
    expect(status(r)).toBe(GOOD);
    // The repair's READ KEYS on sdb is still running, and the guest's command went through sda only.
    expect(h.san.inFlight).toBe(1);
    expect(h.san.calls.filter((c) => c.cdb.length === 32).map((c) => c.path)).toEqual(['sda']);
    const out = await h.send('dm-0', prOut(RESERVE, WE_RO, KA2, 0n));
    expect(status(out)).toBe(GOOD);
    expect(guestOuts().filter((o) => o.startsWith('sdb'))).toEqual([]);
  }, 10_000);

  it('RESERVE: a path that lost the key behind the daemon\'s back is repaired before the RESERVE goes out', async () => {
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, 0n, KA)))).toBe(GOOD);
    expect(h.san.run('sda', prOut(R_IEK, 0, 0n, 0n)).status).toBe(GOOD); // sda's nexus lost it (relogin)
    h.san.calls.length = 0;
    expect(status(await h.send('dm-0', prOut(RESERVE, WE_RO, KA, 0n)))).toBe(GOOD);
    expect(registeredPorts(KA)).toEqual([1, 2]);
    // sda got the key back first, so the guest's RESERVE was performed by sda without a conflict.
    expect(guestOuts()).toEqual(['sda:1']);
    const repairAt = h.san.calls.findIndex((c) => c.path === 'sda' && c.cdb.startsWith('5f06'));
    const reserveAt = h.san.calls.findIndex((c) => c.cdb.startsWith('5f01') && c.cdb.length === 32);
    expect(repairAt).toBeGreaterThanOrEqual(0);
    expect(repairAt).toBeLessThan(reserveAt);
    expect(daemonAudit().find((l) => l['dev'] === 'sda' && l['action'] === 'REGISTER AND IGNORE EXISTING KEY')).toMatchObject({ why: 'missed-registration after check before RESERVE' });
  });

  it('PREEMPT AND ABORT (fence): a stale first path is repaired first, the fence goes through it, every path keeps our key', async () => {
    expect(status(await h.send('dm-0', prOut(R_IEK, 0, 0n, KA)))).toBe(GOOD);
    expect(h.san.run('sdc', prOut(RESERVE, WE_RO, KB, 0n)).status).toBe(GOOD);
    expect(h.san.run('sda', prOut(R_IEK, 0, 0n, 0n)).status).toBe(GOOD);
    h.san.calls.length = 0;
    expect(status(await h.send('dm-0', prOut(PREEMPT_AND_ABORT, WE_RO, KA, KB)))).toBe(GOOD);
    expect(guestOuts()).toEqual(['sda:5']);
    expect(fullStatus(h.san)).toEqual([
      { key: KA, port: 1, holder: true },
      { key: KA, port: 2, holder: false },
    ]);
    expect(reservation(h.san)).toEqual({ key: KA, type: WE_RO });
  });

  it('no path carries the guest\'s key: nothing is repaired, the device answers as for one nexus', async () => {
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, 0n, KA)))).toBe(GOOD);
    h.san.calls.length = 0;
    expect(status(await h.send('dm-0', prOut(RESERVE, WE_RO, KA3, 0n)))).toBe(CONFLICT);
    expect(daemonOuts().filter((o) => o.endsWith(':6'))).toEqual([]);
    expect(registeredPorts(KA3)).toEqual([]);
  });

  it('a stale view on one path never releases or preempts node B\'s reservation', async () => {
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, 0n, KA)))).toBe(GOOD);
    expect(h.san.run('sdc', prOut(RESERVE, WE_RO, KB, 0n)).status).toBe(GOOD);
    h.tree.setState('sdb', 'offline'); // a holder on an unreachable path would be ours to take over; it is not
    h.san.calls.length = 0;
    expect(status(await h.send('dm-0', prOut(RELEASE, WE_RO, KA, 0n)))).toBe(GOOD);
    expect(status(await h.send('dm-0', prOut(RESERVE, WE_RO, KA, 0n)))).toBe(CONFLICT);
    expect(reservation(h.san)).toEqual({ key: KB, type: WE_RO });
    expect(registeredPorts(KB)).toEqual([3]);
    expect(daemonOuts().filter((o) => /:(2|4|5)$/.test(o))).toEqual([]);
  });

  it('PREEMPT AND ABORT performed through a path whose answer was lost: the retry\'s conflict is not the guest\'s answer', async () => {
    expect(status(await h.send('dm-0', prOut(R_IEK, 0, 0n, KA)))).toBe(GOOD);
    expect(h.san.run('sdc', prOut(RESERVE, WE_RO, KB, 0n)).status).toBe(GOOD);
    h.san.calls.length = 0;
    // DID_TRANSPORT_DISRUPTED after the device performed the PREEMPT AND ABORT (only the guest sends one)
    h.san.faults.set('sda', { lostAnswer: { prefix: '5f05', hostStatus: 0x0e } });
    expect(status(await h.send('dm-0', prOut(PREEMPT_AND_ABORT, WE_RO, KA, KB)))).toBe(GOOD);
    expect(guestOuts()).toEqual(['sda:5', 'sdb:5']);
    expect(registeredPorts(KB)).toEqual([]);
    expect(registeredPorts(KA)).toEqual([1, 2]);
    expect(reservation(h.san)).toEqual({ key: KA, type: WE_RO });
  });

  it('PREEMPT AND ABORT of a key that is still there after a lost answer: the conflict stands', async () => {
    expect(status(await h.send('dm-0', prOut(R_IEK, 0, 0n, KA)))).toBe(GOOD);
    h.san.faults.set('sda', { hostStatus: 0x0e }); // not performed
    h.san.run('sdc', prOut(RESERVE, WE_RO, KB, 0n));
    expect(h.san.run('sdb', prOut(R_IEK, 0, 0n, KA3)).status).toBe(GOOD); // sdb: not our key, so it conflicts
    expect(status(await h.send('dm-0', prOut(PREEMPT_AND_ABORT, WE_RO, KA, KB)))).toBe(CONFLICT);
    expect(registeredPorts(KB)).toEqual([3]);
  });

  it('the daemon\'s own REGISTERs keep the device\'s APTPL state (the checks before RESERVE and the poll)', async () => {
    const ptplA = () => (h.san.look('sdc', prIn(IN.REPORT_CAPABILITIES)).data[3]! & 0x01) === 1;
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, 0n, KA, { aptpl: true })))).toBe(GOOD);
    h.tree.setState('sdb', 'offline');
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, KA, KA2, { aptpl: true })))).toBe(GOOD);
    expect(ptplA()).toBe(true);
    h.tree.setState('sdb', 'running');
    await h.router.poll();
    await vi.waitFor(() => expect(registeredPorts(KA2)).toEqual([1, 2]));
    expect(status(await h.send('dm-0', prOut(RESERVE, WE_RO, KA2, 0n)))).toBe(GOOD);
    expect(daemonOuts()).toContain('sda:0'); // the carries-the-key check did run
    expect(ptplA()).toBe(true);
  });

  it('after a RELEASE take-over, the path whose registration the PREEMPT removed gets the key back when it returns', async () => {
    expect(status(await h.send('dm-0', prOut(REGISTER, 0, 0n, KA)))).toBe(GOOD);
    expect(status(await h.send('dm-0', prOut(RESERVE, WE_RO, KA, 0n)))).toBe(GOOD); // held through sda
    h.tree.setState('sda', 'offline');
    expect(status(await h.send('dm-0', prOut(RELEASE, WE_RO, KA, 0n)))).toBe(GOOD);
    expect(registeredPorts(KA)).toEqual([2]);
    expect(daemonAudit().map((l) => `${l['dev']}:${l['action']}:${l['status']}`)).toEqual(
      expect.arrayContaining(['sdb:PREEMPT:GOOD', 'sdb:RELEASE:GOOD']),
    );
    h.tree.setState('sda', 'running');
    await h.router.poll();
    await vi.waitFor(() => expect(registeredPorts(KA)).toEqual([1, 2]));
    expect(reservation(h.san)).toBeNull();
  });
});

describe('opening paths', () => {
  let h: Harness | undefined;
  afterEach(() => h && rmSync(h.tree.root, { recursive: true, force: true }));

  it('a missing node is an unreachable path; the other path serves', async () => {
    h = makeHarness();
    rmSync(join(h.tree.dev, 'sda'));
    expect(status(await h.send('dm-0', prIn(READ_KEYS)))).toBe(GOOD);
    expect(h.san.calls.map((c) => c.path)).toEqual(['sdb']);
  });

  it('a node that is not the device sysfs names is not used', async () => {
    h = makeHarness();
    writeFileSync(join(h.tree.sysfs, 'block', 'sda', 'dev'), '8:99\n');
    expect(status(await h.send('dm-0', prIn(READ_KEYS)))).toBe(GOOD);
    expect(h.san.calls.map((c) => c.path)).toEqual(['sdb']);
  });

  it('a symlink planted at a path node is not followed', async () => {
    h = makeHarness();
    rmSync(join(h.tree.dev, 'sda'));
    symlinkSync(join(h.tree.dev, 'sdc'), join(h.tree.dev, 'sda'));
    expect(status(await h.send('dm-0', prIn(READ_KEYS)))).toBe(GOOD);
    expect(h.san.calls.map((c) => c.path)).toEqual(['sdb']);
    expect(JSON.stringify(h.logs)).toContain('ELOOP');
  });

  it('a path node that is not a block device is not used', async () => {
    h = makeHarness({
      identify: (fd) => {
        const id = identifyFake(fd);
        return basename(readlinkSync(`/proc/self/fd/${fd}`)) === 'sda' && id ? { ...id, block: false } : id;
      },
    });
    expect(status(await h.send('dm-0', prIn(READ_KEYS)))).toBe(GOOD);
    expect(h.san.calls.map((c) => c.path)).toEqual(['sdb']);
    expect(JSON.stringify(h.logs)).toContain('is not a block device');
  });

  it('a block node for which sysfs names no device number is not used', async () => {
    h = makeHarness();
    rmSync(join(h.tree.sysfs, 'block', 'sda', 'dev'));
    expect(status(await h.send('dm-0', prIn(READ_KEYS)))).toBe(GOOD);
    expect(h.san.calls.map((c) => c.path)).toEqual(['sdb']);
  });

  it('EACCES (daemon dropped to a user without access): CHECK CONDITION and an error log that says what to do', async () => {
    h = makeHarness({
      openFile: async () => {
        throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
      },
    });
    const r = await h.send('dm-0', prIn(READ_KEYS));
    expect(status(r)).toBe(CHECK);
    expect(senseOf(r)).toBe(senseHex(0x0b, 0x08, 0x00));
    const line = h.logs.find((l) => l['level'] === 50);
    expect(String(line?.['msg'])).toMatch(/run it as root without -u, or with a group \(-g\)/);
    // Once per path node at error level, not on every request.
    await h.send('dm-0', prOut(REGISTER, 0, 0n, KA));
    expect(h.logs.filter((l) => l['level'] === 50).map((l) => l['path']).sort()).toEqual([join(h.tree.dev, 'sda'), join(h.tree.dev, 'sdb')]);
  });

  it('an open() that hangs: path failure after the open timeout; later requests do not stack up behind it', async () => {
    const real = promisify(openCallback);
    let release!: () => void;
    const hang = new Promise<void>((r) => (release = r));
    h = makeHarness({
      openTimeoutMs: 100,
      openFile: async (path, flags): Promise<number> => {
        if (path.endsWith('/sda')) await hang;
        return real(path, flags);
      },
    });
    const t0 = Date.now();
    expect(status(await h.send('dm-0', prIn(READ_KEYS)))).toBe(GOOD);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    const t1 = Date.now();
    expect(status(await h.send('dm-0', prIn(READ_KEYS)))).toBe(GOOD); // sda's open still pending: skipped at once
    expect(Date.now() - t1).toBeLessThan(90);
    expect(h.san.calls.map((c) => c.path)).toEqual(['sdb', 'sdb']);
    release();
  });
});

describe('concurrency', () => {
  let h: Harness;
  beforeEach(() => (h = makeHarness()));
  afterEach(() => rmSync(h.tree.root, { recursive: true, force: true }));

  it('a fan-out sends to all paths at once', async () => {
    h.san.faults.set('sda', { delayMs: 150 });
    h.san.faults.set('sdb', { delayMs: 150 });
    const t0 = Date.now();
    await h.send('dm-0', prOut(R_IEK, 0, 0n, KA));
    expect(Date.now() - t0).toBeLessThan(280);
    expect(h.san.maxInFlight).toBe(2);
  });

  it('PR OUT on one map is serialized; PR IN and other devices are not held up by a slow path', async () => {
    h.san.faults.set('sda', { delayMs: 300 });
    const order: string[] = [];
    const first = h.send('dm-0', prOut(R_IEK, 0, 0n, KA)).then(() => order.push('first out'));
    await sleep(20);
    const second = h.send('dm-0', prOut(R_IEK, 0, 0n, KA2)).then(() => order.push('second out'));
    const t0 = Date.now();
    h.tree.setState('sda', 'offline'); // PR IN of this map avoids the slow path
    await h.send('dm-0', prIn(READ_KEYS)).then(() => order.push('in'));
    expect(Date.now() - t0).toBeLessThan(200);
    await Promise.all([first, second]);
    expect(order).toEqual(['in', 'first out', 'second out']);
    // The second R&IEK ran after the first: both paths end with KA2 (sdb only, sda went offline).
    expect(fullStatus(h.san).filter((d) => d.port === 2).map((d) => d.key)).toEqual([KA2]);
  });
});
