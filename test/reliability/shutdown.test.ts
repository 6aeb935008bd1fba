// Stop signals with commands in flight (pr-helper-protocol.md 2.6): every
// executing command gets its reply before exit, idle and half-read
// connections see EOF, new connections are refused, exit status 0, socket
// unlinked.
import { closeSync, constants, existsSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HelperClient } from '../../src/client/client.js';
import { PrInAction, PrOutAction } from '../../src/scsi/pr-codes.js';
import { basicParams, prInCdb, prOutCdb } from '../fixtures/scsi-bytes.js';
import * as native from '../../src/native/binding.js';
import { createFakeTargetDir, FakeDevice, fakeTargetEnv } from '../helpers/fake-target.js';
import { RawPeer } from '../helpers/raw-peer.js';
import { killIfRunning, QEMU_PR_HELPER, type RunningDaemon, startDaemon, startProcess } from '../helpers/daemon.js';
import { sleep, waitFor } from '../helpers/wait.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const KEYS = hex('00000001 00000008 0000000000001122');
const readKeys = prInCdb(PrInAction.READ_KEYS, 8192);
const register = prOutCdb(PrOutAction.REGISTER, 0, 24);
const params = basicParams({ saKey: 0x77n });

let fakeDir: string;
let sockDir: string;
let slow: FakeDevice;
let fast: FakeDevice;
let slowFd: number;
let fastFd: number;

beforeAll(() => {
  fakeDir = createFakeTargetDir('rel-stop-');
  sockDir = mkdtempSync(join(tmpdir(), 'rel-stop-sock-'));
  slow = new FakeDevice(fakeDir, 'slow');
  fast = new FakeDevice(fakeDir, 'fast');
  fast.script([{ data: Buffer.alloc(8192, 0x3c) }]);
  slowFd = openSync(slow.path, constants.O_RDWR);
  fastFd = openSync(fast.path, constants.O_RDWR);
});

afterAll(() => {
  closeSync(slowFd);
  closeSync(fastFd);
  rmSync(fakeDir, { recursive: true, force: true });
  rmSync(sockDir, { recursive: true, force: true });
});

function connectError(path: string): string | null {
  try {
    closeSync(native.connectUnix(path));
    return null;
  } catch (err) {
    return (err as native.SystemError).code;
  }
}

const running: RunningDaemon[] = [];
/** Remembers a daemon so that a failed test cannot leave it running. */
function started(d: RunningDaemon): RunningDaemon {
  running.push(d);
  return d;
}
afterEach(() => running.splice(0).forEach(killIfRunning));

describe('stop signals with commands in flight', () => {
  for (const signal of ['SIGTERM', 'SIGHUP', 'SIGINT'] as const) {
    it(`${signal}: executing commands reply, idle and half-read connections see EOF, exit 0, socket unlinked`, async () => {
      slow.script([{ data: KEYS, delayMs: 800 }]);
      slow.clearCalls();
      const socket = join(sockDir, `${signal}.sock`);
      const daemon = started(await startDaemon(socket, [], { env: fakeTargetEnv(fakeDir) }));

      const inQueue = await HelperClient.connect(socket);
      const outQueue = await HelperClient.connect(socket);
      const idle = new RawPeer(socket);
      await idle.send('00000000');
      const midCdb = new RawPeer(socket);
      await midCdb.send('00000000');
      await midCdb.send(readKeys.subarray(0, 8), [fastFd]);
      const midParams = new RawPeer(socket);
      await midParams.send('00000000');
      await midParams.send(register, [fastFd]);
      await midParams.send(params.subarray(0, 10));
      const noHandshake = new RawPeer(socket);
      await noHandshake.waitForBytes(4);

      const prIn = inQueue.execute(readKeys, slowFd);
      const prOut = outQueue.execute(register, slowFd, params);
      expect(await waitFor(() => slow.calls().length === 2)).toBe(true);

      const signalled = Date.now();
      daemon.proc.kill(signal);
      // Stops listening at once: new connections are refused while the commands finish.
      expect(await waitFor(() => connectError(socket) !== null, 500, 5)).toBe(true);
      expect(['ECONNREFUSED', 'ENOENT']).toContain(connectError(socket));

      for (const peer of [idle, midCdb, midParams, noHandshake]) {
        expect(await peer.observe(1000)).toEqual({ received: '00000000', closedByServer: true });
        peer.close();
      }
      const inReply = await prIn;
      const outReply = await prOut;
      const replied = Date.now();
      expect({ status: inReply.status, data: inReply.data.toString('hex') }).toEqual({ status: 0, data: KEYS.toString('hex') });
      expect({ status: outReply.status, data: outReply.data.length }).toEqual({ status: 0, data: 0 });
      expect(replied - signalled).toBeGreaterThan(400);

      // Both clients keep their connections open after the reply, as QEMU does:
      // the daemon must still exit, it does not wait for them.
      const exit = await Promise.race([daemon.exited, sleep(5000).then(() => 'still running 5 s after the replies')]);
      if (typeof exit === 'string' && exit.startsWith('still')) daemon.proc.kill('SIGKILL');
      expect(exit).toBe(0);
      expect(existsSync(socket)).toBe(false);
      // After its reply the connection is closed, not served further.
      await expect(inQueue.execute(readKeys, fastFd)).rejects.toThrow();
      inQueue.close();
      outQueue.close();
      expect(daemon.stderr()).toMatch(new RegExp(`"signal":"${signal}"`));
    }, 20_000);
  }

  for (const who of ['pr-helper', 'qemu-pr-helper'] as const) {
    it.skipIf(who === 'qemu-pr-helper' && !existsSync(QEMU_PR_HELPER))(`${who}: a second stop signal while draining (SIGHUP then SIGTERM) does not cut the drain short`, async () => {
      slow.script([{ data: KEYS, delayMs: 800 }]);
      slow.clearCalls();
      const socket = join(sockDir, `twice-${who}.sock`);
      const env = { env: fakeTargetEnv(fakeDir) };
      const daemon = started(who === 'pr-helper' ? await startDaemon(socket, ['-q'], env) : await startProcess(QEMU_PR_HELPER, ['-k', socket], socket, env));
      const client = await HelperClient.connect(socket);
      const reply = client.execute(readKeys, slowFd);
      expect(await waitFor(() => slow.calls().length === 1)).toBe(true);
      daemon.proc.kill('SIGHUP');
      await waitFor(() => connectError(socket) !== null, 500, 5);
      // The original's handler only sets "terminate" again (spec 2.6); nothing is lost.
      daemon.proc.kill('SIGTERM');
      const outcome = await reply.then(
        (r) => ({ status: r.status, data: r.data.toString('hex') }),
        (err: Error) => ({ error: err.message }),
      );
      client.close();
      const exit = await Promise.race([daemon.exited, sleep(5000).then(() => 'still running 5 s after the reply')]);
      expect({ reply: outcome, exit, socketLeft: existsSync(socket) }).toEqual({
        reply: { status: 0, data: KEYS.toString('hex') },
        exit: 0,
        socketLeft: false,
      });
    }, 20_000);
  }

  it('a pipelining client that never reads does not hold up SIGTERM; whole replies up to the blocked one', async () => {
    // qemu-pr-helper (7.2, checked under the same fake target) drops the one
    // reply it cannot write and exits 0; so do we. Torn replies and a hang are not allowed.
    const socket = join(sockDir, 'pipelined.sock');
    const daemon = started(await startDaemon(socket, ['-q'], { env: fakeTargetEnv(fakeDir) }));
    fast.clearCalls();
    const stream = native.connectUnix(socket);
    try {
      const buf = Buffer.alloc(4);
      await waitFor(() => native.recvmsg(stream, buf, 0, 4) !== null);
      native.sendmsg(stream, Buffer.alloc(4), 0, 4);
      for (let i = 0; i < 100; i++) native.sendmsg(stream, readKeys, 0, 16, [fastFd]);
      // Wait until the daemon is stuck writing (device calls stop increasing).
      let last = -1;
      await waitFor(() => {
        const now = fast.calls().length;
        const stable = now === last && now > 0;
        last = now;
        return stable;
      }, 5000, 100);
      expect(last).toBeLessThan(100);
      const signalled = Date.now();
      daemon.proc.kill('SIGTERM');
      // Now read everything the daemon sends until it closes.
      const chunks: Buffer[] = [];
      const chunk = Buffer.alloc(65536);
      await waitFor(() => {
        for (;;) {
          let got: native.ReceivedMessage | null;
          try {
            got = native.recvmsg(stream, chunk, 0, chunk.length);
          } catch {
            return true;
          }
          if (got === null) return false;
          if (got.bytes === 0) return true;
          chunks.push(Buffer.from(chunk.subarray(0, got.bytes)));
        }
      }, 5000, 5);
      const received = Buffer.concat(chunks).length;
      const replies = Math.floor(received / (104 + 8192));
      expect(replies).toBeGreaterThanOrEqual(last - 1);
      expect(await daemon.exited).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(3000);
      expect(existsSync(socket)).toBe(false);
    } finally {
      closeSync(stream);
    }
  }, 20_000);
});
