// Faults: clients that vanish at every stage of a request, a backend that
// throws or misbehaves, and SG_IO calls that hang while others are served.
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, BackendRequest } from '../../src/backend/backend.js';
import { HelperClient } from '../../src/client/client.js';
import { PrInAction, PrOutAction } from '../../src/scsi/pr-codes.js';
import { basicParams, prInCdb, prOutCdb } from '../fixtures/scsi-bytes.js';
import type { CommandResult } from '../../src/protocol/response.js';
import { createListenSocket } from '../../src/server/listen-socket.js';
import { HelperServer } from '../../src/server/server.js';
import { type RunningDaemon, startDaemon } from '../helpers/daemon.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { createFakeTargetDir, FakeDevice, fakeTargetEnv } from '../helpers/fake-target.js';
import { countOpenFds, settledFdCount } from '../helpers/fds.js';
import { RawPeer } from '../helpers/raw-peer.js';
import { errorLines, fdCountBackTo } from './fuzz-harness.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const readKeys = (len = 8192): Buffer => prInCdb(PrInAction.READ_KEYS, len);
const register = prOutCdb(PrOutAction.REGISTER, 0, 24);
const registerParams = basicParams({ saKey: 0x1122n });
const KEYS = hex('00000001 00000008 0000000000001122');
/** ABORTED COMMAND / I/O PROCESS TERMINATED, fixed format (spec 2.4c). */
const IO_PROCESS_TERMINATED = hex('70 00 0b 00 00 00 00 0a 00 00 00 00 00 06 00 00 00 00');

describe('a client that disconnects at every stage', () => {
  let fakeDir: string;
  let sockDir: string;
  let daemon: RunningDaemon;
  let fast: FakeDevice;
  let slow: FakeDevice;
  let fastFd: number;
  let slowFd: number;
  let baseline = 0;

  beforeAll(async () => {
    fakeDir = createFakeTargetDir('rel-faults-');
    sockDir = mkdtempSync(join(tmpdir(), 'rel-faults-sock-'));
    fast = new FakeDevice(fakeDir, 'fast');
    slow = new FakeDevice(fakeDir, 'slow');
    fast.script([{ data: KEYS }]);
    slow.script([{ data: KEYS, delayMs: 1500 }]);
    fastFd = openSync(fast.path, constants.O_RDWR);
    slowFd = openSync(slow.path, constants.O_RDWR);
    daemon = await startDaemon(join(sockDir, 'h.sock'), [], { env: fakeTargetEnv(fakeDir) });
    await served();
    baseline = await settledFdCount(daemon.proc.pid!);
  });

  afterAll(async () => {
    closeSync(fastFd);
    closeSync(slowFd);
    expect(await daemon.stop()).toBe(0);
    // Nothing a vanishing client does is an error of the daemon.
    expect(errorLines(daemon)).toEqual([]);
    rmSync(fakeDir, { recursive: true, force: true });
    rmSync(sockDir, { recursive: true, force: true });
  });

  async function served(): Promise<void> {
    const client = await HelperClient.connect(daemon.socket);
    const reply = await client.execute(readKeys(), fastFd);
    expect({ status: reply.status, data: reply.data.toString('hex') }).toEqual({ status: 0, data: KEYS.toString('hex') });
    client.close();
  }

  async function afterwards(): Promise<void> {
    expect(daemon.proc.exitCode).toBeNull();
    expect(await fdCountBackTo(daemon.proc.pid!, baseline)).toBe(baseline);
    await served();
  }

  const stages: Array<[string, (peer: RawPeer) => Promise<void>]> = [
    ['right after connect', async () => {}],
    ['after the server handshake, before the client features', async (p) => void (await p.waitForBytes(4))],
    ['mid-handshake (2 of 4 bytes)', (p) => p.send('0000')],
    ['after the handshake', (p) => p.send('00000000')],
    ['mid-CDB, with the descriptor on the first half', async (p) => {
      await p.send('00000000');
      await p.send(readKeys().subarray(0, 8), [fastFd]);
    }],
    ['after a PR OUT CDB, before any parameter', async (p) => {
      await p.send('00000000');
      await p.send(register, [fastFd]);
    }],
    ['mid-parameters (10 of 24 bytes)', async (p) => {
      await p.send('00000000');
      await p.send(register, [fastFd]);
      await p.send(registerParams.subarray(0, 10));
    }],
  ];

  for (const [stage, act] of stages) {
    it(`${stage}: no leak, no error, others served`, async () => {
      fast.clearCalls();
      const peer = new RawPeer(daemon.socket);
      // Except for the first stage, the server must have accepted (and written its handshake).
      if (stage !== 'right after connect') await peer.waitForBytes(4);
      await act(peer);
      peer.close();
      await afterwards();
      // Incomplete requests never reach the device (afterwards() made one call).
      expect(fast.calls()).toHaveLength(1);
    });
  }

  it('while the command executes: it still completes on the device, the reply write fails quietly', async () => {
    slow.clearCalls();
    const peer = new RawPeer(daemon.socket);
    await peer.send('00000000');
    await peer.send(readKeys(), [slowFd]);
    expect(await waitFor(() => slow.calls().length === 1)).toBe(true);
    peer.close();
    // Others are served while the orphaned command runs.
    const started = Date.now();
    await served();
    expect(Date.now() - started).toBeLessThan(1000);
    // Once the device answers, its descriptor and the connection are released.
    await sleep(1600);
    await afterwards();
  });

  it('253 descriptors (SCM_MAX_FD) on handshake, CDB and parameter bytes: the extra ones are dropped, none leaks', async () => {
    fast.clearCalls();
    const flood = Array.from({ length: 253 }, () => fastFd);
    // On the handshake: dropped; the request that follows carries its own.
    const a = new RawPeer(daemon.socket);
    await a.send('00000000', flood);
    await a.send(readKeys(), [fastFd]);
    expect((await a.waitForBytes(4 + 104 + KEYS.length)).length).toBe(4 + 104 + KEYS.length);
    a.close();
    // On the CDB: E2, closed without a reply.
    const b = new RawPeer(daemon.socket);
    await b.send('00000000');
    await b.send(readKeys(), flood);
    b.endInput();
    expect(await b.observe()).toEqual({ received: '00000000', closedByServer: true });
    b.close();
    // On the parameter bytes: dropped, the PR OUT executes.
    const c = new RawPeer(daemon.socket);
    await c.send('00000000');
    await c.send(register, [fastFd]);
    await c.send(registerParams, flood);
    expect((await c.waitForBytes(4 + 104)).readInt32BE(4)).toBe(0);
    c.close();
    await afterwards();
    expect(fast.calls().map((call) => call.cdb[0])).toEqual([0x5e, 0x5f, 0x5e]);
  });

  it('before reading the reply (PR IN with 8 KiB of data, PR OUT), repeated 50 times', async () => {
    const big = new FakeDevice(fakeDir, 'big');
    big.script([{ data: Buffer.alloc(8192, 0xa5) }]);
    const bigFd = openSync(big.path, constants.O_RDWR);
    try {
      for (let i = 0; i < 50; i++) {
        const peer = new RawPeer(daemon.socket);
        await peer.waitForBytes(4);
        await peer.send('00000000');
        if (i % 2 === 0) await peer.send(readKeys(), [bigFd]);
        else {
          await peer.send(register, [bigFd]);
          await peer.send(registerParams);
        }
        // The command reached the device; the client goes away with the reply unread.
        expect(await waitFor(() => big.calls().length === i + 1, 2000, 1)).toBe(true);
        peer.close();
      }
      await afterwards();
    } finally {
      closeSync(bigFd);
    }
  });
});

// ---------------------------------------------------------------------------

class Scripted implements Backend {
  readonly name = 'scripted';
  calls = 0;
  constructor(private readonly answer: (request: BackendRequest, n: number) => Promise<CommandResult> | CommandResult) {}
  execute(request: BackendRequest): Promise<CommandResult> {
    // Deliberately not async: a synchronous throw must be survived too.
    return this.answer(request, this.calls++) as Promise<CommandResult>;
  }
  async close(): Promise<void> {}
}

describe('a backend that throws or misbehaves (in-process server)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rel-backend-'));
  const disk = join(dir, 'disk.img');
  writeFileSync(disk, Buffer.alloc(512));
  const servers: HelperServer[] = [];
  let n = 0;
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function start(backend: Backend): { socket: string; logs: Array<Record<string, unknown>> } {
    const socket = join(dir, `s${n++}.sock`);
    const logs: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        chunk.toString().split('\n').filter(Boolean).forEach((l) => logs.push(JSON.parse(l) as Record<string, unknown>));
        cb();
      },
    });
    const server = new HelperServer({ listenFd: createListenSocket(socket, { mode: 0o600, backlog: 16 }), backend, log: pino({ level: 'debug' }, sink) });
    server.start();
    servers.push(server);
    return { socket, logs };
  }

  /** Sends one request, returns the raw bytes after the handshake and whether the server closed. */
  async function exchange(socket: string, cdb: Buffer, params?: Buffer): Promise<{ reply: Buffer; closed: boolean }> {
    const fd = openSync(disk, 'r+');
    const peer = new RawPeer(socket);
    try {
      await peer.send('00000000');
      await peer.send(cdb, [fd]);
      if (params) await peer.send(params);
      await peer.waitForBytes(4 + 104, 2000);
      await sleep(20);
      peer.endInput();
      const seen = await peer.observe(2000);
      return { reply: peer.received().subarray(4), closed: seen.closedByServer };
    } finally {
      peer.close();
      closeSync(fd);
    }
  }

  const aborted = (reply: Buffer): void => {
    expect(reply.length).toBe(104);
    expect(reply.readInt32BE(0)).toBe(2);
    expect(reply.readInt32BE(4)).toBe(0);
    expect(reply.subarray(8, 26).toString('hex')).toBe(IO_PROCESS_TERMINATED.toString('hex'));
  };

  const throwers: Array<[string, () => never | Promise<never>]> = [
    ['throws synchronously (execute not async)', () => { throw new Error('sync boom'); }],
    ['rejects with undefined', () => Promise.reject(undefined) as Promise<never>],
    ['rejects with a string', () => Promise.reject('string boom') as Promise<never>],
    ['rejects after a delay', () => sleep(30).then(() => { throw new RangeError('late boom'); })],
  ];

  for (const [what, thrower] of throwers) {
    it(`${what}: ABORTED COMMAND, descriptor closed, connection and daemon keep going`, async () => {
      const backend = new Scripted((_req, i) => (i === 0 ? thrower() : { status: 0, data: KEYS }));
      const { socket, logs } = start(backend);
      const before = countOpenFds();
      const { reply } = await exchange(socket, readKeys());
      aborted(reply);
      expect(countOpenFds()).toBe(before);
      expect(logs.some((l) => l.level === 50 && String(l.msg).includes('backend failed'))).toBe(true);
      const client = await HelperClient.connect(socket);
      const fd = openSync(disk, 'r+');
      expect((await client.execute(readKeys(), fd)).data.toString('hex')).toBe(KEYS.toString('hex'));
      closeSync(fd);
      client.close();
    });
  }

  it('one connection’s failing backend call does not disturb a concurrent one', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const backend = new Scripted(async (req) => {
      if (req.cdb[1] === PrInAction.READ_RESERVATION) {
        await gate;
        throw new Error('boom while another runs');
      }
      return { status: 0, data: KEYS };
    });
    const { socket } = start(backend);
    const failing = exchange(socket, prInCdb(PrInAction.READ_RESERVATION, 8192));
    await waitFor(() => backend.calls === 1);
    const client = await HelperClient.connect(socket);
    const fd = openSync(disk, 'r+');
    expect((await client.execute(readKeys(), fd)).status).toBe(0);
    release();
    aborted((await failing).reply);
    expect((await client.execute(readKeys(), fd)).status).toBe(0);
    closeSync(fd);
    client.close();
  });

  // A backend bug must never become a reply QEMU asserts on (spec 1.5 / 1.7).
  const misbehaving: Array<[string, CommandResult, Buffer, Buffer | undefined, (reply: Buffer) => void]> = [
    ['data on a PR OUT reply', { status: 0, data: Buffer.alloc(40, 1) }, register, registerParams, (r) => expect(r.readInt32BE(4)).toBe(0)],
    ['more data than the allocation length', { status: 0, data: Buffer.alloc(300, 1) }, readKeys(16), undefined, (r) => {
      expect(r.readInt32BE(4)).toBe(16);
      expect(r.length).toBe(104 + 16);
    }],
    ['more data than 8192 bytes', { status: 0, data: Buffer.alloc(9000, 1) }, readKeys(8192), undefined, (r) => expect(r.readInt32BE(4)).toBe(8192)],
    ['data with CHECK CONDITION', { status: 2, sense: IO_PROCESS_TERMINATED, data: Buffer.alloc(8, 1) }, readKeys(), undefined, (r) => expect(r.readInt32BE(4)).toBe(0)],
    ['a 200-byte sense buffer', { status: 2, sense: Buffer.alloc(200, 0x70) }, readKeys(), undefined, (r) => expect(r.length).toBe(104)],
  ];
  for (const [what, result, cdb, params, check] of misbehaving) {
    it(`clamps ${what}`, async () => {
      const { socket } = start(new Scripted(async () => result));
      const { reply } = await exchange(socket, cdb, params);
      check(reply);
    });
  }

  it('a result that is not an object (contract violation): connection dropped and logged, descriptor closed, server keeps serving', async () => {
    let calls = 0;
    const { socket, logs } = start(new Scripted(async () => (calls++ === 0 ? (undefined as unknown as CommandResult) : { status: 0, data: KEYS })));
    const before = countOpenFds();
    const { reply, closed } = await exchange(socket, readKeys());
    // No reply QEMU could misread: either ABORTED COMMAND or nothing at all.
    expect(closed).toBe(true);
    if (reply.length > 0) aborted(reply);
    expect(countOpenFds()).toBe(before);
    expect(logs.some((l) => l.level === 50)).toBe(true);
    const client = await HelperClient.connect(socket);
    const fd = openSync(disk, 'r+');
    expect((await client.execute(readKeys(), fd)).status).toBe(0);
    closeSync(fd);
    client.close();
  });
});

// ---------------------------------------------------------------------------

describe('SG_IO that hangs', () => {
  it('two hung commands do not delay other connections, and they still answer', async () => {
    const fakeDir = createFakeTargetDir('rel-hang-');
    const sockDir = mkdtempSync(join(tmpdir(), 'rel-hang-sock-'));
    const hung = new FakeDevice(fakeDir, 'hung');
    const fast = new FakeDevice(fakeDir, 'fast');
    hung.script([{ data: KEYS, delayMs: 4000 }]);
    fast.script([{ data: KEYS }]);
    const hungFd = openSync(hung.path, constants.O_RDWR);
    const fastFd = openSync(fast.path, constants.O_RDWR);
    const daemon = await startDaemon(join(sockDir, 'h.sock'), ['-q'], { env: fakeTargetEnv(fakeDir) });
    try {
      const stuck = await Promise.all([HelperClient.connect(daemon.socket), HelperClient.connect(daemon.socket)]);
      const pending = stuck.map((c) => c.execute(readKeys(), hungFd));
      let hungAnsweredAt = 0;
      void Promise.all(pending).then(() => (hungAnsweredAt = Date.now()));
      expect(await waitFor(() => hung.calls().length === 2)).toBe(true);
      // Meanwhile: 20 connections x 5 requests, each served promptly.
      const latencies: number[] = [];
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          const c = await HelperClient.connect(daemon.socket);
          for (let i = 0; i < 5; i++) {
            const t = Date.now();
            expect((await c.execute(readKeys(), fastFd)).status).toBe(0);
            latencies.push(Date.now() - t);
          }
          c.close();
        }),
      );
      // All of it done while the two commands still hang.
      expect(hungAnsweredAt).toBe(0);
      expect(Math.max(...latencies)).toBeLessThan(2000);
      // The hung ones answer once the device does.
      for (const reply of await Promise.all(pending)) expect(reply.data.toString('hex')).toBe(KEYS.toString('hex'));
      stuck.forEach((c) => c.close());
    } finally {
      closeSync(hungFd);
      closeSync(fastFd);
      expect(await daemon.stop()).toBe(0);
      rmSync(fakeDir, { recursive: true, force: true });
      rmSync(sockDir, { recursive: true, force: true });
    }
  }, 30_000);
});

