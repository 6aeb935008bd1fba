import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { HelperClient, type Reply } from '../../src/client/client.js';
import { PrInAction, PrOutAction } from '../../src/scsi/pr-codes.js';
import { basicParams, prInCdb, prOutCdb, EA, WE, WE_RO } from '../fixtures/scsi-bytes.js';
import { DAEMON_ENTRY, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { REPO_ROOT } from '../helpers/repo-root.js';
import { O_PATH } from '../../src/native/binding.js';

/*
 * The simulated disk end to end: our client -> socket -> daemon -> engine,
 * with two image files standing for two I_T nexuses of one LUN.
 */
const dir = mkdtempSync(join(tmpdir(), 'pr-simsock-'));
const imageA = join(dir, 'nodeA.img');
const imageB = join(dir, 'nodeB.img');
const stranger = join(dir, 'other.img');
const stateDir = join(dir, 'state');
const configPath = join(dir, 'sim.json');
for (const f of [imageA, imageB, stranger]) writeFileSync(f, Buffer.alloc(4096));
writeFileSync(
  configPath,
  JSON.stringify({
    stateDir,
    luns: [{ name: 'disk0', paths: [
      { path: imageA, initiator: 'iqn.2008-11.org.linux-kvm:node-a' },
      { path: imageB, initiator: 'iqn.2008-11.org.linux-kvm:node-b', targetPort: 2 },
    ] }],
  }),
);

const running: RunningDaemon[] = [];
let counter = 0;
afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.stop('SIGKILL')));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function daemon(args: string[] = ['--simulate', configPath]): Promise<RunningDaemon> {
  const d = await startDaemon(join(dir, `d${counter++}.sock`), args);
  running.push(d);
  return d;
}

/** One cluster node: a connection plus its own descriptor of its image file. */
class Node {
  private constructor(private readonly client: HelperClient, private readonly fd: number) {}
  static async open(socket: string, image: string): Promise<Node> {
    return new Node(await HelperClient.connect(socket), openSync(image, 'r+'));
  }
  out(action: number, params: Parameters<typeof basicParams>[0], type = 0): Promise<Reply> {
    const list = basicParams(params);
    return this.client.execute(prOutCdb(action, type, list.length), this.fd, list);
  }
  in(action: number, alloc = 8192): Promise<Reply> {
    return this.client.execute(prInCdb(action, alloc), this.fd);
  }
  async keys(): Promise<bigint[]> {
    const reply = await this.in(PrInAction.READ_KEYS);
    expect({ status: reply.status, sense: senseOf(reply) }).toEqual({ status: 0, sense: [0, 0, 0] });
    const n = reply.data.readUInt32BE(4) / 8;
    return Array.from({ length: n }, (_, i) => reply.data.readBigUInt64BE(8 + 8 * i));
  }
  close(): void {
    this.client.close();
    closeSync(this.fd);
  }
}

const senseOf = (r: Reply) => [r.sense[2]! & 0x0f, r.sense[12], r.sense[13]];
const ok = (r: Reply) => expect({ status: r.status, sense: senseOf(r) }).toEqual({ status: 0, sense: [0, 0, 0] });

describe('simulated disk through the socket', () => {
  it('runs the classic two-node dance', async () => {
    const d = await daemon();
    const [a, b] = await Promise.all([Node.open(d.socket, imageA), Node.open(d.socket, imageB)]);
    ok(await a.out(PrOutAction.REGISTER, { saKey: 0xaaaan }));
    ok(await b.out(PrOutAction.REGISTER, { saKey: 0xbbbbn }));
    expect(await b.keys()).toEqual([0xaaaan, 0xbbbbn]);
    ok(await a.out(PrOutAction.RESERVE, { key: 0xaaaan }, WE_RO));
    expect((await b.out(PrOutAction.RESERVE, { key: 0xbbbbn }, WE_RO)).status).toBe(0x18);

    ok(await b.out(PrOutAction.PREEMPT, { key: 0xbbbbn, saKey: 0xaaaan }, WE_RO));
    const ua = await a.in(PrInAction.READ_KEYS);
    expect({ status: ua.status, sense: senseOf(ua) }).toEqual({ status: 2, sense: [6, 0x2a, 0x05] });
    expect(await a.keys()).toEqual([0xbbbbn]);
    const reservation = await a.in(PrInAction.READ_RESERVATION);
    expect(reservation.data.readUInt32BE(4)).toBe(16);
    expect(reservation.data.readBigUInt64BE(8)).toBe(0xbbbbn);
    expect(reservation.data[21]! & 0x0f).toBe(WE_RO);

    ok(await a.out(PrOutAction.REGISTER, { saKey: 0xaaaan }));
    ok(await a.out(PrOutAction.CLEAR, { key: 0xaaaan }));
    expect(senseOf(await b.in(PrInAction.READ_KEYS))).toEqual([6, 0x2a, 0x03]);
    expect(await b.keys()).toEqual([]);
    a.close();
    b.close();
  });

  it('runs a Windows-cluster-like sequence with REGISTER AND IGNORE EXISTING KEY', async () => {
    const d = await daemon();
    const [a, b] = await Promise.all([Node.open(d.socket, imageA), Node.open(d.socket, imageB)]);
    ok(await a.out(PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, { saKey: 0x1111n }));
    ok(await b.out(PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, { saKey: 0x2222n }));
    ok(await a.out(PrOutAction.RESERVE, { key: 0x1111n }, WE_RO));
    // Node B challenges: preempts A's reservation and key.
    ok(await b.out(PrOutAction.PREEMPT, { key: 0x2222n, saKey: 0x1111n }, WE_RO));
    expect(senseOf(await a.in(PrInAction.READ_KEYS))).toEqual([6, 0x2a, 0x05]);
    ok(await b.out(PrOutAction.RELEASE, { key: 0x2222n }, WE_RO));
    ok(await b.out(PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, { saKey: 0n }));
    expect(await a.keys()).toEqual([]);
    const gen = (await a.in(PrInAction.READ_KEYS)).data.readUInt32BE(0);
    // REGISTER x2, PREEMPT, R&IEK unregister: RESERVE and RELEASE do not count.
    expect(gen).toBe(4);
    a.close();
    b.close();
  });

  it('answers LOGICAL UNIT NOT SUPPORTED for a descriptor that matches no configured path', async () => {
    const d = await daemon();
    const other = await Node.open(d.socket, stranger);
    const reply = await other.in(PrInAction.READ_KEYS);
    expect({ status: reply.status, sense: senseOf(reply), size: reply.data.length }).toEqual({ status: 2, sense: [5, 0x25, 0], size: 0 });
    other.close();
  });

  it('serves only descriptors that could read (PR IN) or write (PR OUT) the image: O_PATH and O_WRONLY are refused', async () => {
    const d = await daemon();
    const client = await HelperClient.connect(d.socket);
    const writer = await Node.open(d.socket, imageA);
    expect((await writer.out(PrOutAction.REGISTER, { saKey: 0xabn })).status).toBe(0);
    const reply = async (flags: number, cdb: Buffer, params?: Buffer) => {
      const fd = openSync(imageA, flags);
      try {
        const r = await client.execute(cdb, fd, params);
        return { status: r.status, sense: r.sense.subarray(0, 14).toString('hex'), data: r.data.toString('hex') };
      } finally {
        closeSync(fd);
      }
    };
    const ABORTED = '70000b000000000a000000000006';
    const INVALID_OPCODE = '700005000000000a000000002000';
    for (const flags of [O_PATH, constants.O_WRONLY]) {
      expect(await reply(flags, prInCdb(PrInAction.READ_KEYS, 256))).toEqual({ status: 2, sense: ABORTED, data: '' });
      expect(await reply(flags, prInCdb(PrInAction.READ_FULL_STATUS, 256))).toEqual({ status: 2, sense: ABORTED, data: '' });
    }
    const list = basicParams({ saKey: 0xcdn });
    expect(await reply(O_PATH, prOutCdb(PrOutAction.REGISTER, 0, list.length), list)).toMatchObject({ status: 2, sense: INVALID_OPCODE });
    // A readable descriptor still sees the key.
    expect((await reply(constants.O_RDONLY, prInCdb(PrInAction.READ_KEYS, 256))).data).toBe('0000000100000008' + '00000000000000ab');
    client.close();
  });

  it('reports READ FULL STATUS with both nexuses and their target ports', async () => {
    const d = await daemon();
    const [a, b] = await Promise.all([Node.open(d.socket, imageA), Node.open(d.socket, imageB)]);
    ok(await a.out(PrOutAction.REGISTER, { saKey: 0xan }));
    ok(await b.out(PrOutAction.REGISTER, { saKey: 0xbn }));
    ok(await a.out(PrOutAction.RESERVE, { key: 0xan }, EA));
    const status = (await b.in(PrInAction.READ_FULL_STATUS)).data;
    const descriptors: Array<{ key: bigint; holder: boolean; port: number; name: string }> = [];
    for (let off = 8; off < 8 + status.readUInt32BE(4); ) {
      const tidLength = status.readUInt32BE(off + 20);
      const tid = status.subarray(off + 24, off + 24 + tidLength);
      descriptors.push({ key: status.readBigUInt64BE(off), holder: (status[off + 12]! & 1) === 1, port: status.readUInt16BE(off + 18), name: tid.subarray(4).toString().replace(/\0+$/, '') });
      off += 24 + tidLength;
    }
    expect(descriptors).toEqual([
      { key: 0xan, holder: true, port: 1, name: 'iqn.2008-11.org.linux-kvm:node-a' },
      { key: 0xbn, holder: false, port: 2, name: 'iqn.2008-11.org.linux-kvm:node-b' },
    ]);
    a.close();
    b.close();
  });

  it('in the embedded default, each connecting process is an initiator of each file', async () => {
    const d = await daemon(['--simulate']);
    const image = join(dir, 'shared.img');
    writeFileSync(image, Buffer.alloc(4096));
    const script = `
      import { HelperClient } from ${JSON.stringify(join(REPO_ROOT, 'dist/src/client/client.js'))};
      import { basicParams, prOutCdb } from ${JSON.stringify(join(REPO_ROOT, 'dist/test/fixtures/scsi-bytes.js'))};
      import { openSync } from 'node:fs';
      const c = await HelperClient.connect(process.argv[1]);
      const p = basicParams({ saKey: BigInt(process.argv[3]) });
      const r = await c.execute(prOutCdb(0, 0, 24), openSync(process.argv[2], 'r+'), p);
      console.log(r.status);
      c.close();`;
    for (const key of ['0x1', '0x2']) {
      expect(execFileSync(process.execPath, ['--input-type=module', '-e', script, d.socket, image, key], { encoding: 'utf8' }).trim()).toBe('0');
    }
    const me = await Node.open(d.socket, image);
    expect(await me.keys()).toEqual([1n, 2n]);
    me.close();
  });
});

describe('APTPL persistence', () => {
  function stateFiles(): string[] {
    return existsSync(stateDir) ? readdirSync(stateDir).sort() : [];
  }

  it('survives SIGTERM and kill -9 while APTPL is on, and starts empty without it', async () => {
    rmSync(stateDir, { recursive: true, force: true });
    let d = await daemon();
    let a = await Node.open(d.socket, imageA);
    ok(await a.out(PrOutAction.REGISTER, { saKey: 0x77n, aptpl: true }));
    ok(await a.out(PrOutAction.RESERVE, { key: 0x77n }, WE));
    a.close();
    expect(stateFiles()).toEqual(['disk0.pr-state.json']);
    await d.stop('SIGKILL');

    d = await daemon();
    const b = await Node.open(d.socket, imageB);
    expect(await b.keys()).toEqual([0x77n]);
    const reservation = await b.in(PrInAction.READ_RESERVATION);
    expect(reservation.data.readBigUInt64BE(8)).toBe(0x77n);
    // APTPL off: the state file goes away and a restart forgets everything.
    a = await Node.open(d.socket, imageA);
    ok(await a.out(PrOutAction.REGISTER, { key: 0x77n, saKey: 0x78n }));
    a.close();
    b.close();
    expect(stateFiles()).toEqual([]);
    await d.stop('SIGTERM');
    d = await daemon();
    const c = await Node.open(d.socket, imageB);
    expect(await c.keys()).toEqual([]);
    c.close();
  });

  it('keeps a corrupt state file aside, logs it, and starts the LUN empty', async () => {
    rmSync(stateDir, { recursive: true, force: true });
    execFileSync('mkdir', ['-p', stateDir]);
    writeFileSync(join(stateDir, 'disk0.pr-state.json'), '{"version": 1, "generation": "oops"');
    const d = await daemon();
    const a = await Node.open(d.socket, imageA);
    expect(await a.keys()).toEqual([]);
    a.close();
    expect(stateFiles()).toEqual(['disk0.pr-state.json.corrupt-1']);
    expect(readFileSync(join(stateDir, 'disk0.pr-state.json.corrupt-1'), 'utf8')).toBe('{"version": 1, "generation": "oops"');
    expect(d.stderr()).toContain('PR state file is unusable');
  });
});

describe('configuration errors', () => {
  function start(config: string): { status: number | null; stderr: string } {
    const path = join(dir, `bad${counter++}.json`);
    writeFileSync(path, config);
    try {
      execFileSync(process.execPath, [DAEMON_ENTRY, '-k', join(dir, 'bad.sock'), '--simulate', path], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
      return { status: 0, stderr: '' };
    } catch (err) {
      const e = err as { status: number; stderr: string };
      return { status: e.status, stderr: e.stderr.replace(path, 'CONFIG') };
    }
  }

  it.each([
    ['{', /^pr-helper: config CONFIG: .*JSON/],
    ['{"luns": [{"name": "d", "paths": [{"path": "rel.img", "initiator": "iqn.2008-11.org.linux-kvm:a"}]}]}', /^pr-helper: config CONFIG: luns\[0\]\.paths\[0\]\.path must be an absolute path/],
    ['{"luns": [], "extra": 1}', /^pr-helper: config CONFIG: /],
    [`{"luns": [{"name": "d", "paths": [{"path": "${join(dir, 'missing.img')}", "initiator": "iqn.2008-11.org.linux-kvm:a"}]}]}`, /^pr-helper: config CONFIG: luns\[0\]\.paths\[0\]\.path: .*missing\.img: ENOENT/],
  ])('%s -> one clear line, exit 1, no socket left', (config, message) => {
    const result = start(config);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(existsSync(join(dir, 'bad.sock'))).toBe(false);
  });
});
