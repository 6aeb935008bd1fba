// The embedded simulated default (--simulate without a config) against a
// client that floods it with new files: the units it makes are bounded
// (--sim-max-luns), idle ones make room, nothing but regular files and block
// devices becomes a unit, and no file is ever written for APTPL.
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HelperClient } from '../../src/client/client.js';
import { PrInAction, PrOutAction } from '../../src/scsi/pr-codes.js';
import { deviceIdentity, processInitiatorName } from '../../src/sim/simulated-backend.js';
import { basicParams, prInCdb, prOutCdb } from '../fixtures/scsi-bytes.js';
import { startDaemon } from '../helpers/daemon.js';

const dir = mkdtempSync(join(tmpdir(), 'pr-embedded-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LUN_NOT_SUPPORTED = '700005000000000a000000002500';
const INTERNAL_TARGET_FAILURE = '700004000000000a000000004400';
const sense = (s: Buffer) => s.subarray(0, 14).toString('hex');

describe('embedded default under a flood of new files', () => {
  it('at most --sim-max-luns units: idle ones make room, units with registrations stay, then LOGICAL UNIT NOT SUPPORTED', async () => {
    const stateHome = join(dir, 'state-home');
    const daemon = await startDaemon(join(dir, 'flood.sock'), ['-q', '--simulate', '--sim-max-luns', '20'], { env: { XDG_STATE_HOME: stateHome, HOME: dir } });
    const client = await HelperClient.connect(daemon.socket);
    const withFile = async <T>(name: string, use: (fd: number) => Promise<T>): Promise<T> => {
      const path = join(dir, name);
      writeFileSync(path, '');
      const fd = openSync(path, 'r+');
      try {
        return await use(fd);
      } finally {
        closeSync(fd);
      }
    };
    try {
      // 200 new files, each asked once: idle units are dropped to make room.
      for (let i = 0; i < 200; i++) {
        const r = await withFile(`idle-${i}`, (fd) => client.execute(prInCdb(PrInAction.READ_KEYS, 8), fd));
        expect({ i, status: r.status }).toEqual({ i, status: 0 });
      }
      // 20 units holding a registration fill the bound for good.
      for (let i = 0; i < 20; i++) {
        const list = basicParams({ saKey: BigInt(i + 1) });
        const r = await withFile(`held-${i}`, (fd) => client.execute(prOutCdb(PrOutAction.REGISTER, 0, list.length), fd, list));
        expect({ i, status: r.status }).toEqual({ i, status: 0 });
      }
      const refused = await withFile('one-more', (fd) => client.execute(prInCdb(PrInAction.READ_KEYS, 8), fd));
      expect({ status: refused.status, sense: sense(refused.sense) }).toEqual({ status: 2, sense: LUN_NOT_SUPPORTED });
      // A held unit still answers with its key.
      const held = await withFile('held-3', (fd) => client.execute(prInCdb(PrInAction.READ_KEYS, 16), fd));
      expect(held.data.readBigUInt64BE(8)).toBe(4n);
    } finally {
      client.close();
      expect(await daemon.stop()).toBe(0);
    }
    expect(existsSync(stateHome)).toBe(false);
  });

  it('pipes and character devices are no unit; APTPL is refused as not persistable and writes no file', async () => {
    const stateHome = join(dir, 'state-home-2');
    const before = existsSync('/var/lib/pr-helper') ? readdirSync('/var/lib/pr-helper').length : 0;
    const daemon = await startDaemon(join(dir, 'kinds.sock'), ['-q', '--simulate'], { env: { XDG_STATE_HOME: stateHome, HOME: dir } });
    const client = await HelperClient.connect(daemon.socket);
    try {
      for (const path of ['/dev/null', '/dev/zero']) {
        const fd = openSync(path, 'r+');
        const r = await client.execute(prInCdb(PrInAction.READ_KEYS, 8), fd);
        closeSync(fd);
        expect({ path, status: r.status, sense: sense(r.sense) }).toEqual({ path, status: 2, sense: LUN_NOT_SUPPORTED });
      }
      const image = join(dir, 'aptpl.img');
      writeFileSync(image, '');
      const fd = openSync(image, 'r+');
      const list = basicParams({ saKey: 0x99n, aptpl: true });
      const r = await client.execute(prOutCdb(PrOutAction.REGISTER, 0, list.length), fd, list);
      closeSync(fd);
      expect({ status: r.status, sense: sense(r.sense) }).toEqual({ status: 2, sense: INTERNAL_TARGET_FAILURE });
    } finally {
      client.close();
      expect(await daemon.stop()).toBe(0);
    }
    expect(existsSync(stateHome)).toBe(false);
    expect(existsSync('/var/lib/pr-helper') ? readdirSync('/var/lib/pr-helper').length : 0).toBe(before);
  });
});

describe('simulator identities', () => {
  const stats = (kind: 'file' | 'blk' | 'chr' | 'fifo', birthtimeMs = 1) => ({
    dev: 8,
    ino: 42,
    rdev: 259,
    birthtimeMs,
    isFile: () => kind === 'file',
    isBlockDevice: () => kind === 'blk',
    isCharacterDevice: () => kind === 'chr',
  });

  it('block and character devices with one number are apart; a reused inode is a new file; a FIFO is nothing', () => {
    expect(deviceIdentity(stats('blk'))).not.toBe(deviceIdentity(stats('chr')));
    expect(deviceIdentity(stats('file', 1))).not.toBe(deviceIdentity(stats('file', 2)));
    expect(deviceIdentity(stats('fifo'))).toBeNull();
  });

  it('a process initiator carries the start time, so a reused pid is another initiator', () => {
    const proc = mkdtempSync(join(dir, 'proc-'));
    mkdirSync(join(proc, '4242'));
    // Field 22 of /proc/PID/stat is the start time; the command name may hold spaces and parentheses.
    const name = (start: number) => {
      writeFileSync(join(proc, '4242', 'stat'), `4242 (qemu (vm) 1) S ${Array.from({ length: 18 }, (_, i) => i + 1).join(' ')} ${start} 0 0\n`);
      return processInitiatorName(4242, proc);
    };
    expect([name(111), name(222)]).toEqual(['iqn.2008-11.org.linux-kvm:pr-helper.pid-4242.111', 'iqn.2008-11.org.linux-kvm:pr-helper.pid-4242.222']);
    expect(processInitiatorName(process.pid)).toMatch(new RegExp(`^iqn\\.2008-11\\.org\\.linux-kvm:pr-helper\\.pid-${process.pid}\\.[1-9]\\d*$`));
  });
});
