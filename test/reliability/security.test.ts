// Security properties of the daemon as deployed: the socket never has wider
// permissions (or another group) than requested, not even for a moment; the
// allow list rejects other uids/gids; PR OUT on read-only descriptors never
// reaches the device; only PERSISTENT RESERVE IN/OUT CDBs ever reach SG_IO.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, constants, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HelperClient } from '../../src/client/client.js';
import { PrInAction } from '../../src/scsi/pr-codes.js';
import { basicParams, prInCdb, prOutCdb } from '../fixtures/scsi-bytes.js';
import * as native from '../../src/native/binding.js';
import { DAEMON_ENTRY, requireTool, type RunningDaemon, startDaemon, startProcess } from '../helpers/daemon.js';
import { REPO_ROOT } from '../helpers/repo-root.js';
import { waitFor } from '../helpers/wait.js';
import { createFakeTargetDir, FakeDevice, fakeTargetEnv } from '../helpers/fake-target.js';
import { RawPeer } from '../helpers/raw-peer.js';

const asRoot = process.getuid!() === 0;
const haveTools = requireTool('/usr/bin/setpriv', 'util-linux') && requireTool('/usr/bin/cc', 'gcc') && requireTool('/usr/bin/strace', 'strace');
const dir = mkdtempSync(join(tmpdir(), 'rel-sec-'));
chmodSync(dir, 0o755);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** GID of group `daemon` (Debian: 1): neither root's group nor nobody's. */
const DAEMON_GID = 1;
const INVALID_OPCODE = '700005000000000a000000002000' + '00000000';
const ABORTED_COMMAND = '70000b000000000a000000000006' + '00000000';

function buildWatcher(): string {
  const out = join(dir, 'socket-watch');
  if (!existsSync(out)) execFileSync('cc', ['-O2', '-o', out, join(REPO_ROOT, 'test/reliability/socket-watch.c')]);
  return out;
}

interface WatchResult {
  samples: number;
  seen: string[];
  wider: number;
  foreignGroup: number;
  connects: number;
}

/** Starts the daemon `times` times with umask 000 while an unprivileged watcher spins on the path. */
async function watchStarts(mode: string, extra: string[], times: number): Promise<WatchResult> {
  const socket = join(dir, `watch-${mode}.sock`);
  // The watcher is uid 65534 in group 0 (root's group, which the daemon's socket starts out with).
  const watcher = spawn('setpriv', ['--reuid=65534', '--regid=0', '--clear-groups', buildWatcher(), socket, String(times * 2000 + 5000), mode, String(extra.includes('--socket-group') ? DAEMON_GID : 0)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  watcher.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<void>((r) => watcher.on('exit', () => r()));
  try {
    for (let i = 0; i < times; i++) {
      // umask 000: a socket created naively (bind, then chmod) would be 0777 for a moment.
      const daemon = await startProcess('sh', ['-c', 'umask 000; exec "$0" "$@"', process.execPath, DAEMON_ENTRY, '-k', socket, '-q', '--socket-mode', mode, ...extra], socket);
      expect(await daemon.stop()).toBe(0);
    }
  } finally {
    watcher.kill('SIGINT');
  }
  await done;
  if (out === '') throw new Error('socket-watch printed nothing');
  return JSON.parse(out) as WatchResult;
}

describe.skipIf(!asRoot || !haveTools)('socket permissions are set atomically', () => {
  it('--socket-mode 0600 under umask 000: never observed wider, never connectable by another uid', async () => {
    const r = await watchStarts('0600', [], 6);
    expect(r.samples).toBeGreaterThan(0);
    expect(r).toMatchObject({ wider: 0, connects: 0 });
    expect(r.seen).toEqual(['0600:0']);
  }, 60_000);

  it('--socket-mode 0660 --socket-group daemon: a root-group process never gets to connect', async () => {
    const r = await watchStarts('0660', ['--socket-group', 'daemon'], 15);
    expect(r.samples).toBeGreaterThan(0);
    expect(r.wider).toBe(0);
    // The node is born root:daemon 0660, so uid 65534/gid 0 never gets in.
    expect({ connects: r.connects, seen: r.seen }).toEqual({ connects: 0, seen: r.seen });
  }, 90_000);

  it('--socket-group: the node is born with its group (setfsgid around bind), and the path is never chowned (strace)', async () => {
    const socket = join(dir, 'strace.sock');
    const trace = join(dir, 'strace.out');
    const daemon = await startProcess('strace', ['-f', '-qq', '-o', trace, '-e', 'trace=bind,listen,chown,fchownat,lchown,fchown,setfsgid', process.execPath, DAEMON_ENTRY, '-k', socket, '-q', '--simulate', '--socket-mode', '0660', '--socket-group', 'daemon'], socket, { timeoutMs: 30_000 });
    // The traced daemon is strace's child: stop it directly (a signal to strace would only detach it).
    const traced = Number(readFileSync(`/proc/${daemon.proc.pid}/task/${daemon.proc.pid}/children`, 'utf8').trim().split(' ')[0]);
    try {
      process.kill(traced, 'SIGTERM');
      expect(await daemon.exited).toBe(0);
    } finally {
      try {
        process.kill(traced, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    const lines = readFileSync(trace, 'utf8').split('\n');
    const bindAt = lines.findIndex((l) => /bind\(\d+, \{sa_family=AF_UNIX, sun_path="/.test(l) && / = 0$/.test(l));
    expect(bindAt).toBeGreaterThanOrEqual(0);
    const tid = lines[bindAt]!.split(' ')[0];
    // On the binding thread: fsgid set to the group just before bind() and restored after it.
    const fsgid = lines.filter((l) => l.startsWith(`${tid} `) && l.includes('setfsgid('));
    expect(fsgid.some((l) => l.includes(`setfsgid(${DAEMON_GID})`))).toBe(true);
    expect(lines.filter((l) => /chown/.test(l))).toEqual([]);
    expect(statSync(socket, { throwIfNoEntry: false })).toBeUndefined();
  }, 60_000);

  it('--socket-group: a directory writer who swaps in a symlink right after bind() changes no file (racer)', async () => {
    const race = mkdtempSync(join(tmpdir(), 'rel-race-'));
    const racer = join(dir, 'bind-racer.so');
    if (!existsSync(racer)) execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', racer, join(REPO_ROOT, 'test/reliability/bind-racer.c'), '-ldl']);
    const victim = join(race, 'victim');
    writeFileSync(victim, 'root only\n', { mode: 0o640 });
    const socket = join(race, 's.sock');
    const env = { LD_PRELOAD: racer, RACE_PATH: socket, RACE_VICTIM: victim };
    // The daemon serves on the moved node: startProcess waits until that one answers.
    const daemon = await startProcess(process.execPath, [DAEMON_ENTRY, '-k', socket, '-q', '--simulate', '--socket-mode', '0660', '--socket-group', 'daemon'], `${socket}.moved`, { env });
    expect(await daemon.stop()).toBe(0);
    try {
      expect(statSync(victim).gid).toBe(0);
      const born = lstatSync(`${socket}.moved`);
      expect({ socket: born.isSocket(), gid: born.gid, mode: born.mode & 0o777 }).toEqual({ socket: true, gid: DAEMON_GID, mode: 0o660 });
    } finally {
      rmSync(race, { recursive: true, force: true });
    }
  }, 30_000);

  it('refuses a socket directory that another uid owns or that others may write (unless sticky)', () => {
    const base = mkdtempSync(join(tmpdir(), 'rel-sockdir-'));
    try {
      const open = join(base, 'open');
      const foreign = join(base, 'foreign');
      const sticky = join(base, 'sticky');
      for (const d of [open, foreign, sticky]) mkdirSync(d);
      chmodSync(open, 0o777);
      chownSync(foreign, 65534, 65534);
      chmodSync(sticky, 0o1777);
      const run = (d: string) => spawnSync(process.execPath, [DAEMON_ENTRY, '-k', join(d, 's.sock'), '--simulate'], { encoding: 'utf8', timeout: 1500 });
      for (const [d, why] of [[open, 'is writable by others (mode 0777)'], [foreign, 'belongs to uid 65534']] as const) {
        const r = run(d);
        expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 1, stderr: `pr-helper: refusing to create the socket ${join(d, 's.sock')}: ${d} ${why}, so the socket could be replaced\n` });
        expect(existsSync(join(d, 's.sock'))).toBe(false);
      }
      expect(run(sticky).error).toMatchObject({ code: 'ETIMEDOUT' });
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------

/** Connects as another identity (setpriv) with Node's net module; reports what arrived. */
function connectAs(socket: string, ids: string[]): { received: string; closed: boolean } {
  const script = `
    const s = require('net').connect(process.argv[1]);
    const got = [];
    let sent = false;
    s.on('data', (d) => { got.push(d); if (!sent && Buffer.concat(got).length >= 4) { sent = true; s.end(Buffer.alloc(4)); } });
    s.on('error', () => {});
    s.on('close', () => { console.log(JSON.stringify({ received: Buffer.concat(got).toString('hex'), closed: true })); process.exit(0); });
    setTimeout(() => { console.log(JSON.stringify({ received: Buffer.concat(got).toString('hex'), closed: false })); process.exit(0); }, 3000);`;
  const out = execFileSync('setpriv', [...ids, '--clear-groups', '/usr/bin/node', '-e', script, socket], { encoding: 'utf8', env: { HOME: '/tmp', PATH: '/usr/bin:/bin' } });
  return JSON.parse(out.trim()) as { received: string; closed: boolean };
}

describe.skipIf(!asRoot || !haveTools)('the allow list', () => {
  let daemon: RunningDaemon;
  const denials = (): Array<Record<string, unknown>> =>
    daemon
      .stderr()
      .split('\n')
      .filter((l) => l.includes('allow list'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  afterAll(async () => {
    expect(await daemon?.stop()).toBe(0);
  });

  it('--allow-uid 0: a client of uid 65534 is closed before the handshake and logged; root is served', async () => {
    daemon = await startDaemon(join(dir, 'allow.sock'), ['--simulate', '--socket-mode', '0666', '--allow-uid', '0']);
    expect(connectAs(daemon.socket, ['--reuid=65534', '--regid=65534'])).toEqual({ received: '', closed: true });
    expect(await waitFor(() => denials().length === 1)).toBe(true);
    expect(denials()[0]).toMatchObject({ level: 40, peer: { uid: 65534, gid: 65534 } });
    const client = await HelperClient.connect(daemon.socket);
    client.close();
  });

  it('--allow-gid: the primary gid decides; another uid in that group is served, the same uid in another group is not', async () => {
    await daemon.stop();
    // uid 0 stays allowed for the start-up probe.
    daemon = await startDaemon(join(dir, 'allow-gid.sock'), ['--simulate', '--socket-mode', '0666', '--allow-uid', '0', '--allow-gid', '65534']);
    expect(connectAs(daemon.socket, ['--reuid=4242', '--regid=65534'])).toEqual({ received: '00000000', closed: true });
    expect(connectAs(daemon.socket, ['--reuid=65534', `--regid=${DAEMON_GID}`])).toEqual({ received: '', closed: true });
    expect(await waitFor(() => denials().length === 1)).toBe(true);
  });
});

// ---------------------------------------------------------------------------

describe('what may reach SG_IO', () => {
  let fakeDir: string;
  let daemon: RunningDaemon;
  let dev: FakeDevice;

  beforeAll(async () => {
    fakeDir = createFakeTargetDir('rel-sec-fake-');
    dev = new FakeDevice(fakeDir, 'disk');
    daemon = await startDaemon(join(dir, 'sgio.sock'), ['-q'], { env: fakeTargetEnv(fakeDir) });
  });

  afterAll(async () => {
    expect(await daemon.stop()).toBe(0);
    rmSync(fakeDir, { recursive: true, force: true });
  });

  it('PR OUT on O_RDONLY and O_PATH descriptors: INVALID OPCODE for every service action and length, no SG_IO', async () => {
    dev.clearCalls();
    const client = await HelperClient.connect(daemon.socket);
    for (const flags of [constants.O_RDONLY, native.O_PATH, constants.O_RDONLY | constants.O_NONBLOCK]) {
      const fd = openSync(dev.path, flags);
      try {
        for (let action = 0; action < 32; action++) {
          for (const length of [0, 24, 8192]) {
            const reply = await client.execute(prOutCdb(action, 1, length), fd, length === 0 ? undefined : Buffer.alloc(length, 0x11));
            expect({ action, length, status: reply.status, sense: reply.sense.subarray(0, 18).toString('hex') }).toEqual({ action, length, status: 2, sense: INVALID_OPCODE });
          }
        }
      } finally {
        closeSync(fd);
      }
    }
    expect(dev.calls()).toEqual([]);
    // The same commands on O_RDWR and O_WRONLY do reach the device; PR IN on O_RDONLY too.
    for (const flags of [constants.O_RDWR, constants.O_WRONLY]) {
      const fd = openSync(dev.path, flags);
      expect((await client.execute(prOutCdb(0, 0, 24), fd, basicParams({ saKey: 1n }))).status).toBe(0);
      closeSync(fd);
    }
    const ro = openSync(dev.path, constants.O_RDONLY);
    expect((await client.execute(prInCdb(PrInAction.READ_KEYS, 8), ro)).status).toBe(0);
    closeSync(ro);
    expect(dev.calls().map((c) => c.cdb[0])).toEqual([0x5f, 0x5f, 0x5e]);
    client.close();
  });

  it('PR IN on O_PATH and O_WRONLY descriptors: ABORTED COMMAND (the EBADF SG_IO gives the original on O_PATH), no SG_IO', async () => {
    dev.clearCalls();
    const client = await HelperClient.connect(daemon.socket);
    for (const flags of [native.O_PATH, constants.O_WRONLY]) {
      const fd = openSync(dev.path, flags);
      try {
        for (const action of [PrInAction.READ_KEYS, PrInAction.READ_RESERVATION, PrInAction.REPORT_CAPABILITIES, PrInAction.READ_FULL_STATUS]) {
          const reply = await client.execute(prInCdb(action, 256), fd);
          expect({ flags, action, status: reply.status, sense: reply.sense.subarray(0, 18).toString('hex') }).toEqual({ flags, action, status: 2, sense: ABORTED_COMMAND });
        }
      } finally {
        closeSync(fd);
      }
    }
    expect(dev.calls()).toEqual([]);
    client.close();
  });

  it('of all 256 opcodes (each with a descriptor, lengths 0 and 24) only 0x5E and 0x5F reach the device', async () => {
    dev.clearCalls();
    const fd = openSync(dev.path, constants.O_RDWR);
    try {
      for (let opcode = 0; opcode < 256; opcode++) {
        for (const length of [0, 24]) {
          // The length where the opcode's group code puts it (spec 1.4).
          const cdb = Buffer.alloc(16);
          cdb[0] = opcode;
          const group = opcode >> 5;
          if (group === 0) cdb[4] = length;
          else if (group === 1 || group === 2) cdb.writeUInt16BE(length, 7);
          else if (group === 4) cdb.writeUInt32BE(length, 10);
          else if (group === 5) cdb.writeUInt32BE(length, 6);
          const peer = new RawPeer(daemon.socket);
          try {
            await peer.send('00000000');
            await peer.send(cdb, [fd]);
            await peer.send(Buffer.alloc(length, 0x22));
            peer.endInput();
          } catch (err) {
            // The daemon already closed (E4): part of the observation.
            if (!native.isSystemError(err, 'EPIPE') && !native.isSystemError(err, 'ECONNRESET')) throw err;
          }
          const seen = await peer.observe(3000);
          peer.close();
          const pr = opcode === 0x5e || opcode === 0x5f;
          // PR commands reply; anything else is closed without a reply (E4).
          expect({ opcode, closed: seen.closedByServer, replied: seen.received.length > 8 }).toEqual({ opcode, closed: true, replied: pr });
        }
      }
    } finally {
      closeSync(fd);
    }
    const opcodes = dev.calls().map((c) => c.cdb[0]);
    expect(opcodes).toEqual([0x5e, 0x5e, 0x5f, 0x5f]);
  }, 60_000);
});
