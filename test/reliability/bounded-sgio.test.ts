// SG_IO threads are bounded (--max-sgio-commands, --max-device-commands):
// 3000 commands to hung devices (the LD_PRELOAD fake target sleeping in the
// ioctl) leave the daemon with threads at the cap, every command beyond the
// bounds is answered BUSY at once, and a healthy device is still answered
// within the isolation bound while the hung ones hold their threads.
import { closeSync, constants, readdirSync, rmSync } from 'node:fs';
import { openSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HelperClient, type Reply } from '../../src/client/client.js';
import { PrInAction } from '../../src/scsi/pr-codes.js';
import { prInCdb } from '../fixtures/scsi-bytes.js';
import { startDaemon } from '../helpers/daemon.js';
import { createFakeTargetDir, FakeDevice, fakeTargetEnv } from '../helpers/fake-target.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) {
  const message = 'bounded SG_IO tests need root (the SG_IO daemon requires CAP_SYS_RAWIO)';
  if (process.env.CI) throw new Error(message);
  console.warn(`SKIPPING: ${message}`);
}

const COMMANDS = 3000;
const HUNG_DEVICES = 6;
const HUNG_MS = 6000;
const MAX_COMMANDS = 256;
const BUSY = 0x08;
/** What "a healthy device never waits behind a hung one" allows on a shared 2-core machine. */
const ISOLATION_BOUND_MS = 1000;

const threads = (pid: number): number => readdirSync(`/proc/${pid}/task`).length;

describe.skipIf(!isRoot)('bounded SG_IO threads', () => {
  const dir = createFakeTargetDir('bounded-sgio-');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`${COMMANDS} commands to hung devices: threads at the cap, BUSY at once beyond it, a healthy device still answers`, async () => {
    const hung = Array.from({ length: HUNG_DEVICES }, (_, i) => new FakeDevice(dir, `hung${i}`));
    hung.forEach((d) => d.script([{ delayMs: HUNG_MS }]));
    const healthy = new FakeDevice(dir, 'healthy');
    const daemon = await startDaemon(join(dir, 'd.sock'), ['-q', '--max-connections', String(COMMANDS + 100), '--max-connections-per-uid', String(COMMANDS + 100)], { env: fakeTargetEnv(dir) });
    const pid = daemon.proc.pid!;
    const fds = hung.map((d) => openSync(d.path, constants.O_RDONLY));
    const healthyFd = openSync(healthy.path, constants.O_RDONLY);
    const clients: HelperClient[] = [];
    try {
      const before = threads(pid);
      const cdb = prInCdb(PrInAction.READ_KEYS, 8);
      const started = Date.now();
      const replies: Array<Promise<{ reply: Reply; ms: number }>> = [];
      for (let i = 0; i < COMMANDS; i++) {
        const client = await HelperClient.connect(daemon.socket);
        clients.push(client);
        replies.push(client.execute(cdb, fds[i % HUNG_DEVICES]!).then((reply) => ({ reply, ms: Date.now() - started })));
      }
      const sent = Date.now() - started;
      expect(sent).toBeLessThan(HUNG_MS / 2);
      // Every command beyond the bounds is answered BUSY at once.
      const busy = await Promise.all(replies.map((r) => Promise.race([r, new Promise<null>((res) => setTimeout(() => res(null), HUNG_MS / 2 - sent))])));
      const early = busy.filter((r) => r !== null);
      expect(early.length).toBe(COMMANDS - MAX_COMMANDS);
      expect(early.every((r) => r!.reply.status === BUSY)).toBe(true);
      const during = threads(pid);
      expect(during - before).toBeLessThanOrEqual(MAX_COMMANDS + 2);
      expect(during - before).toBeGreaterThanOrEqual(MAX_COMMANDS - 16);
      // A healthy device is let in while the hung ones fill the bound.
      const probe = await HelperClient.connect(daemon.socket);
      clients.push(probe);
      const t0 = Date.now();
      expect((await probe.execute(cdb, healthyFd)).status).toBe(0);
      expect(Date.now() - t0).toBeLessThan(ISOLATION_BOUND_MS);
      // The admitted ones complete when their device answers.
      const all = await Promise.all(replies);
      expect(all.filter((r) => r.reply.status === 0).length).toBe(MAX_COMMANDS);
      expect(hung.reduce((n, d) => n + d.calls().length, 0)).toBe(MAX_COMMANDS);
    } finally {
      clients.forEach((c) => c.close());
      [...fds, healthyFd].forEach((fd) => closeSync(fd));
      expect(await daemon.stop()).toBe(0);
    }
  }, 60_000);
});
