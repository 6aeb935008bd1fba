import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HelperClient } from '../../src/client/client.js';
import { basicParams, IN, prInCdb, prOutCdb, SA } from '../fixtures/scsi-bytes.js';
import { DAEMON_ENTRY, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { writeSimConfig } from '../helpers/sim-config.js';

/*
 * `pr-helper validate` end to end: the CLI, through the socket and fd
 * passing, against the daemon's simulated disk with one and two nexuses.
 */
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'pr-validate-'));
// c is a third initiator that only watches the LUN.
const images = { a: join(dir, 'a.img'), b: join(dir, 'b.img'), c: join(dir, 'c.img') };
let daemon: RunningDaemon;

beforeAll(async () => {
  for (const image of Object.values(images)) writeFileSync(image, '');
  mkdirSync(join(dir, 'state'));
  const config = writeSimConfig(dir, [{ name: 'disk0', paths: [
    { path: images.a, initiator: 'iqn.2008-11.org.linux-kvm:node-a' },
    { path: images.b, initiator: 'iqn.2008-11.org.linux-kvm:node-b', targetPort: 2 },
    { path: images.c, initiator: 'iqn.2008-11.org.linux-kvm:watcher' },
  ] }]);
  daemon = await startDaemon(join(dir, 'prh.sock'), ['--simulate', config]);
});

afterAll(async () => {
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function validate(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [DAEMON_ENTRY, 'validate', '-k', daemon.socket, ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function keysOnLun(image = images.a): Promise<string> {
  const client = await HelperClient.connect(daemon.socket);
  const fd = openSync(image, 'r+');
  try {
    const reply = await client.execute(prInCdb(IN.READ_KEYS), fd);
    return reply.data.subarray(8).toString('hex');
  } finally {
    client.close();
    closeSync(fd);
  }
}

describe('pr-helper validate on the simulated disk', () => {
  it('passes with two nexuses, prints step — expected — observed — verdict, and removes its keys', async () => {
    const r = await validate('-d', images.a, '-d', images.b);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^  node 2: unregistered: RESERVE must fail — expected RESERVATION CONFLICT — observed RESERVATION CONFLICT — PASS$/m);
    expect(r.stdout).toMatch(/^Result: PASS: \d+ passed, 0 warnings, 0 failed, 0 skipped$/m);
    expect(await keysOnLun()).toBe('');
  });

  it('passes the single-node subset with one device, as JSON', async () => {
    const r = await validate('-d', images.a, '--profile', 'fence_scsi', '--json');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { outcome: string; keys: { A: string }; flows: { id: string; skipped: string | null; notes: string[] }[] };
    expect(report.outcome).toBe('pass');
    expect(report.keys.A).toMatch(/^0x[0-9a-f]+$/);
    expect(report.flows.map((f) => f.id)).toEqual(['capabilities', 'nexus', 'fence_scsi']);
    expect(report.flows[1]!.skipped).toMatch(/one device/);
    expect(report.flows[2]!.notes.join(' ')).toMatch(/Needs a second device/);
    expect(await keysOnLun()).toBe('');
  });

  it('refuses a LUN another initiator registered on, unless --force, and leaves that key alone', async () => {
    const client = await HelperClient.connect(daemon.socket);
    const fd = openSync(images.b, 'r+');
    const list = basicParams({ saKey: 0xf00dn });
    try {
      expect((await client.execute(prOutCdb(SA.REGISTER, 0, list.length), fd, list)).status).toBe(0);
      const refused = await validate('-d', images.a);
      expect(refused.code).toBe(2);
      expect(refused.stdout).toMatch(/not this run's \(0xf00d\); refusing to touch it without --force/);
      const forced = await validate('-d', images.a, '--force');
      expect(forced.code).toBe(0);
      expect(forced.stdout).toMatch(/CprepDiskPRClear is not sent/);
      expect(await keysOnLun()).toBe('000000000000f00d');
    } finally {
      // The forced run's commands may have left this nexus a UNIT ATTENTION, which the first command consumes.
      const unregister = basicParams({ key: 0xf00dn });
      let status = -1;
      for (let attempt = 0; attempt < 2 && status !== 0; attempt++) status = (await client.execute(prOutCdb(SA.REGISTER, 0, unregister.length), fd, unregister)).status;
      expect(status).toBe(0);
      client.close();
      closeSync(fd);
    }
  });

  it('Ctrl-C in the middle of a flow: exit 130, the rest not run, and READ KEYS finds none of its keys', async () => {
    const child = spawn(process.execPath, [DAEMON_ENTRY, 'validate', '-k', daemon.socket, '-d', images.a, '-d', images.b, '--profile', 'all'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    // Interrupt as soon as the run has a key on the LUN, seen from a third initiator.
    let seen = '';
    while (seen === '' && child.exitCode === null) seen = await keysOnLun(images.c);
    expect(seen, 'the run ended before any key was seen').not.toBe('');
    child.kill('SIGINT');
    const [code] = await exited;
    expect(stderr).toMatch(/^pr-helper validate: interrupted; removing the validation keys/m);
    expect(code).toBe(130);
    expect(stdout).toMatch(/ — observed not run: interrupted — SKIP$/m);
    expect(stdout).toMatch(/^  node 1: no validation key is left on the LUN — .* — PASS$/m);
    expect(stdout).toMatch(/^Result: INTERRUPTED: /m);
    expect(await keysOnLun(images.c)).toBe('');
  });

  it('says why it cannot start: no helper, no device, bad profile', async () => {
    const missing = await run(process.execPath, [DAEMON_ENTRY, 'validate', '-k', join(dir, 'nothing.sock'), '-d', images.a]).catch((e: unknown) => e as { code: number; stderr: string });
    expect(missing).toMatchObject({ code: 2, stderr: expect.stringMatching(/nothing\.sock does not exist: is pr-helper running\?/) });
    expect(await validate('-d', join(dir, 'absent.img'))).toMatchObject({ code: 2, stderr: expect.stringMatching(/cannot open .*absent\.img: ENOENT/) });
    expect(await validate('-d', images.a, '--profile', 'vmware')).toMatchObject({ code: 1, stderr: expect.stringMatching(/expected wsfc, fence_scsi, all/) });
  });

  it('on the lio profile without its state directory fails at the first REGISTER with LIO\'s cause and fix, and still removes its key', async () => {
    const lioDir = join(dir, 'lio');
    mkdirSync(lioDir);
    const image = join(lioDir, 'disk.img');
    writeFileSync(image, '');
    const config = { stateDir: join(lioDir, 'pr'), profile: 'lio', luns: [{ name: 'disk0', paths: [{ path: image, initiator: 'naa.50014050000000a1' }] }] };
    writeFileSync(join(lioDir, 'sim.json'), JSON.stringify(config));
    const lio = await startDaemon(join(lioDir, 'prh.sock'), ['--simulate', join(lioDir, 'sim.json')]);
    try {
      const r = await run(process.execPath, [DAEMON_ENTRY, 'validate', '-k', lio.socket, '-d', image, '--profile', 'wsfc', '--json']).catch((e: unknown) => e as { code: number; stdout: string });
      expect((r as { code?: number }).code).toBe(1);
      const report = JSON.parse(r.stdout) as { outcome: string; flows: { steps: { id: string; verdict: string; observed: string; explanation: { cause: string; fix: string } | null }[] }[]; cleanup: { id: string; verdict: string }[] };
      expect(report.outcome).toBe('fail');
      const failure = report.flows.flatMap((f) => f.steps).find((s) => s.verdict === 'fail')!;
      expect(failure.id).toBe('capabilities.register');
      expect(failure.observed).toBe('CHECK CONDITION, NOT READY 08/00 (logical unit communication failure)');
      expect(failure.explanation!.cause).toMatch(/^LIO cannot write its APTPL state/);
      expect(failure.explanation!.fix).toMatch(/\/etc\/target\/pr or \/var\/target\/pr/);
      // The flow's own cleanup unregistered (applied, though answered NOT READY, as
      // LIO does), so the final unregister has nothing to write and what is left is verified.
      expect(report.cleanup.map((c) => [c.id, c.verdict])).toEqual([
        ['cleanup.unregister-a', 'pass'],
        ['cleanup.verify', 'pass'],
      ]);
    } finally {
      await lio.stop();
    }
  });
});
