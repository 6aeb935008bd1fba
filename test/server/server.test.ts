import { mkdirSync, mkdtempSync, openSync, closeSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Backend, BackendRequest } from '../../src/backend/backend.js';
import { HelperClient } from '../../src/client/client.js';
import { PrInAction } from '../../src/scsi/pr-codes.js';
import { prInCdb } from '../fixtures/scsi-bytes.js';
import * as native from '../../src/native/binding.js';
import type { CommandResult } from '../../src/protocol/response.js';
import { createListenSocket, ListenError } from '../../src/server/listen-socket.js';
import { HelperServer } from '../../src/server/server.js';
import { countOpenFds } from '../helpers/fds.js';
import { RawPeer } from '../helpers/raw-peer.js';
import { sleep } from '../helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'pr-server-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const disk = join(dir, 'disk.img');
writeFileSync(disk, Buffer.alloc(512));

/** A backend test double whose answers and timing each test controls. */
class ScriptedBackend implements Backend {
  readonly name = 'scripted';
  readonly seen: BackendRequest[] = [];
  constructor(private readonly answer: (request: BackendRequest) => Promise<CommandResult>) {}
  execute(request: BackendRequest): Promise<CommandResult> {
    this.seen.push(request);
    return this.answer(request);
  }
  async close(): Promise<void> {}
}

interface Harness {
  server: HelperServer;
  socket: string;
  logs: Array<Record<string, unknown>>;
}

let counter = 0;
const running: HelperServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

function startServer(backend: Backend, extra: Partial<ConstructorParameters<typeof HelperServer>[0]> = {}): Harness {
  const socket = join(dir, `s${counter++}.sock`);
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      chunk.toString().split('\n').filter(Boolean).forEach((l) => logs.push(JSON.parse(l)));
      cb();
    },
  });
  const server = new HelperServer({ listenFd: createListenSocket(socket, { mode: 0o600, backlog: 16 }), backend, log: pino({ level: 'debug' }, sink), ...extra });
  server.start();
  running.push(server);
  return { server, socket, logs };
}

const GOOD: CommandResult = { status: 0, data: Buffer.from('00000000000000000000000000000000', 'hex') };
const readKeys = prInCdb(PrInAction.READ_KEYS, 8192);

async function withDisk<T>(fn: (fd: number) => Promise<T>): Promise<T> {
  const fd = openSync(disk, 'r+');
  try {
    return await fn(fd);
  } finally {
    closeSync(fd);
  }
}

describe('HelperServer', () => {
  it('runs connections in parallel: a slow command does not delay another connection', async () => {
    let release: () => void = () => {};
    const backend = new ScriptedBackend(async (req) => {
      if (req.cdb[1] === PrInAction.READ_RESERVATION) await new Promise<void>((r) => (release = r));
      return GOOD;
    });
    const { socket } = startServer(backend);
    const [slow, fast] = await Promise.all([HelperClient.connect(socket), HelperClient.connect(socket)]);
    await withDisk(async (fd) => {
      const order: string[] = [];
      const slowDone = slow.execute(prInCdb(PrInAction.READ_RESERVATION, 8192), fd).then(() => order.push('slow'));
      while (backend.seen.length === 0) await sleep(1);
      await fast.execute(readKeys, fd).then(() => order.push('fast'));
      release();
      await slowDone;
      expect(order).toEqual(['fast', 'slow']);
    });
    slow.close();
    fast.close();
  });

  it('passes the peer credentials and closes the request descriptor after executing', async () => {
    const backend = new ScriptedBackend(async () => GOOD);
    const { socket } = startServer(backend);
    const client = await HelperClient.connect(socket);
    const before = countOpenFds();
    await withDisk((fd) => client.execute(readKeys, fd));
    expect(backend.seen[0]!.peer).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    // The server's copy of the descriptor lives in this process too (in-process server).
    expect(countOpenFds()).toBe(before);
    client.close();
  });

  it('answers ABORTED COMMAND when the backend throws, and keeps the connection', async () => {
    let calls = 0;
    const { socket, logs } = startServer(
      new ScriptedBackend(async () => {
        if (calls++ === 0) throw new Error('backend exploded');
        return GOOD;
      }),
    );
    const client = await HelperClient.connect(socket);
    await withDisk(async (fd) => {
      const failed = await client.execute(readKeys, fd);
      expect(failed.status).toBe(2);
      expect(failed.sense.subarray(0, 18).toString('hex')).toBe('70000b000000000a000000000006' + '00000000');
      expect((await client.execute(readKeys, fd)).status).toBe(0);
    });
    expect(logs.some((l) => l.level === 50 && String(l.msg).includes('backend failed'))).toBe(true);
    client.close();
  });

  it('refuses PR OUT on a read-only descriptor without calling the backend', async () => {
    const backend = new ScriptedBackend(async () => GOOD);
    const { socket } = startServer(backend);
    const client = await HelperClient.connect(socket);
    const fd = openSync(disk, 'r');
    const reply = await client.execute(Buffer.from('5f000000000000001800', 'hex'), fd, Buffer.alloc(24));
    closeSync(fd);
    expect(reply.status).toBe(2);
    expect(reply.sense.subarray(0, 18).toString('hex')).toBe('700005000000000a000000002000' + '00000000');
    expect(backend.seen).toHaveLength(0);
    client.close();
  });

  it('logs the original messages for protocol violations', async () => {
    const { socket, logs } = startServer(new ScriptedBackend(async () => GOOD));
    const peer = new RawPeer(socket);
    await peer.send('00000000');
    await peer.send(readKeys);
    expect((await peer.observe()).closedByServer).toBe(true);
    peer.close();
    expect(logs.some((l) => l.msg === 'No file descriptor in request.')).toBe(true);
  });

  it('drops a peer that hangs up before the handshake silently', async () => {
    const { socket, logs } = startServer(new ScriptedBackend(async () => GOOD));
    // Fewer than the backlog: connect blocks, and this process is also the server.
    for (let i = 0; i < 10; i++) closeSync(native.connectUnix(socket));
    const client = await HelperClient.connect(socket);
    await withDisk((fd) => client.execute(readKeys, fd));
    client.close();
    await sleep(20);
    expect(logs.filter((l) => Number(l.level) >= 50)).toEqual([]);
    expect(logs.filter((l) => l.msg === 'connection closed').length).toBeGreaterThanOrEqual(10);
  });

  it('stops gracefully: the executing command replies, idle connections close, new ones are refused', async () => {
    let release: () => void = () => {};
    const backend = new ScriptedBackend(async () => {
      await new Promise<void>((r) => (release = r));
      return GOOD;
    });
    const { server, socket } = startServer(backend);
    const busy = await HelperClient.connect(socket);
    const idle = new RawPeer(socket);
    await idle.send('00000000');
    await withDisk(async (fd) => {
      const reply = busy.execute(readKeys, fd);
      while (backend.seen.length === 0) await sleep(1);
      const stopped = server.stop();
      expect((await idle.observe()).closedByServer).toBe(true);
      expect(() => native.connectUnix(socket)).toThrow();
      release();
      expect((await reply).status).toBe(0);
      await stopped;
    });
    expect(server.connectionCount).toBe(0);
    busy.close();
    idle.close();
  });

  it('names the peer (pid, uid, gid, VM from /proc/PID/cmdline) in every line of its connection, and the device in request lines', async () => {
    const proc = join(dir, 'proc');
    mkdirSync(join(proc, String(process.pid)), { recursive: true });
    writeFileSync(join(proc, String(process.pid), 'cmdline'), ['/usr/bin/qemu-system-x86_64', '-name', 'guest=vmX,debug-threads=on', ''].join('\0'));
    const { socket, logs } = startServer(new ScriptedBackend(async () => GOOD), { procRoot: proc });
    const client = await HelperClient.connect(socket);
    await withDisk((fd) => client.execute(readKeys, fd));
    client.close();
    while (!logs.some((l) => l.msg === 'connection closed')) await sleep(2);
    const peer = { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() };
    const lines = logs.filter((l) => ['connection opened', 'request', 'connection closed'].includes(String(l.msg)));
    expect(lines.map((l) => l.msg)).toEqual(['connection opened', 'request', 'connection closed']);
    for (const l of lines) expect(l).toMatchObject({ peer, vm: 'vmX', exe: 'qemu-system-x86_64' });
    expect(lines[1]).toMatchObject({ file: disk, op: 'PR IN', action: 'READ KEYS' });
  });

  it('closes peers outside the allow list and beyond the connection limit', async () => {
    const me = process.getuid!();
    const { socket, logs } = startServer(new ScriptedBackend(async () => GOOD), { access: { allowUids: [me + 1], allowGids: [] } });
    const stranger = new RawPeer(socket);
    expect(await stranger.observe()).toEqual({ received: '', closedByServer: true });
    stranger.close();
    expect(logs.some((l) => String(l.msg).includes('allow list'))).toBe(true);

    const limited = startServer(new ScriptedBackend(async () => GOOD), { maxConnections: 1 });
    const first = await HelperClient.connect(limited.socket);
    const second = new RawPeer(limited.socket);
    expect(await second.observe()).toEqual({ received: '', closedByServer: true });
    second.close();
    await withDisk(async (fd) => expect((await first.execute(readKeys, fd)).status).toBe(0));
    first.close();
  });
});

describe('createListenSocket', () => {
  it('creates the socket with the requested mode', () => {
    const path = join(dir, 'mode.sock');
    const fd = createListenSocket(path, { mode: 0o660, backlog: 4 });
    expect(statSync(path).mode & 0o777).toBe(0o660);
    closeSync(fd);
  });

  it('replaces a stale socket but refuses to displace a live daemon', () => {
    const path = join(dir, 'stale.sock');
    closeSync(createListenSocket(path, { mode: 0o600, backlog: 4 }));
    const live = createListenSocket(path, { mode: 0o600, backlog: 4 });
    expect(() => createListenSocket(path, { mode: 0o600, backlog: 4 })).toThrow(new ListenError(`another daemon is already serving ${path}`));
    closeSync(live);
  });

  it('refuses to delete something that is not a socket, and bad paths', () => {
    const path = join(dir, 'regular');
    writeFileSync(path, 'keep me');
    expect(() => createListenSocket(path, { mode: 0o600, backlog: 4 })).toThrow(/is not a socket/);
    expect(statSync(path).size).toBe(7);
    expect(() => createListenSocket('relative.sock', { mode: 0o600, backlog: 4 })).toThrow('socket path must be absolute');
    expect(() => createListenSocket('/' + 'x'.repeat(120), { mode: 0o600, backlog: 4 })).toThrow(/too long/);
  });
});
