import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAEMON_ENTRY, requireTool, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { writeSimConfig } from '../helpers/sim-config.js';

/*
 * `pr-helper sg_persist`: sg_persist's spelling, output (sg3_utils
 * src/sg_persist.c prin_work/prout_work) and exit statuses, through the
 * helper to the simulated disk. This machine has no SCSI devices, so the
 * byte-for-byte comparison with Debian's sg_persist covers the failures
 * that happen before a SCSI command (bad input, missing device); the VM rig
 * would be needed for the rest.
 */
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'pr-sgp-'));
const a = join(dir, 'a.img');
const b = join(dir, 'b.img');
let daemon: RunningDaemon;

beforeAll(async () => {
  writeFileSync(a, '');
  writeFileSync(b, '');
  const config = writeSimConfig(dir, [{ name: 'disk0', paths: [
    { path: a, initiator: 'iqn.2008-11.org.linux-kvm:node-a' },
    { path: b, initiator: 'naa.50014050000000a2', targetPort: 2 },
  ] }]);
  daemon = await startDaemon(join(dir, 'prh.sock'), ['--simulate', config]);
});

afterAll(async () => {
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function exec(command: string, args: string[], env: Record<string, string> = {}): Promise<Result> {
  try {
    const { stdout, stderr } = await run(command, args, { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as Result;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const ours = (...args: string[]): Promise<Result> => exec(process.execPath, [DAEMON_ENTRY, 'sg_persist', ...args], { PR_HELPER_SOCKET: daemon.socket });

describe('pr-helper sg_persist through the helper', () => {
  it('runs a two-node session in both spellings with sg_persist\'s output and exit statuses', async () => {
    expect(await ours('-n', a)).toEqual({ code: 0, stdout: '  PR generation=0x0, there are NO registered reservation keys\n', stderr: '' });
    expect(await ours('-n', '-o', '-I', '-S', 'aa', a)).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await ours('--no-inquiry', '--out', '--register-ignore', '--param-sark=0xbb', `--device=${b}`)).toMatchObject({ code: 0 });
    expect(await ours('-n', '-oR', '-K', 'aa', '-T', '5', a)).toMatchObject({ code: 0, stderr: '' });
    expect((await ours('-n', '--read-keys', b)).stdout).toBe('  PR generation=0x2, 2 registered reservation keys follow:\n    0xaa\n    0xbb\n');
    expect((await ours('-n', '-r', b)).stdout).toBe(
      '  PR generation=0x2, Reservation follows:\n    Key=0xaa\n    scope: LU_SCOPE,  type: Write Exclusive, registrants only\n',
    );
    expect((await ours('-n', '--read-status', a)).stdout).toBe(
      [
        '  PR generation=0x2',
        '    Key=0xaa',
        '      All target ports bit clear',
        '      Relative port address: 0x1',
        '      << Reservation holder >>',
        '      scope: LU_SCOPE,  type: Write Exclusive, registrants only',
        '      Transport Id of initiator:',
        '        iSCSI name: iqn.2008-11.org.linux-kvm:node-a',
        '    Key=0xbb',
        '      All target ports bit clear',
        '      Relative port address: 0x2',
        '      not reservation holder',
        '      Transport Id of initiator:',
        '        SAS address: 0x50014050000000a2',
        '',
      ].join('\n'),
    );
    expect((await ours('-n', '-c', a)).stdout).toMatch(/^Report capabilities response:\n {2}Replace Lost Reservation Capable\(RLR_C\): 0\n[^]*\n {6}Exclusive Access, all registrants: 1\n$/);
    expect(await ours('-n', '-o', '-R', '-K', 'bb', '-T', '5', b)).toEqual({
      code: 24,
      stdout: '',
      stderr: 'PR out (Reserve): Reservation conflict\nsg_persist failed: Reservation conflict\n',
    });
    expect(await ours('-n', '-o', '-L', '-K', 'aa', '-T', '1', a)).toMatchObject({
      code: 5,
      stderr: 'PR out (Release): bad field in cdb or parameter list (perhaps unsupported service action)\nsg_persist failed: Illegal request\n',
    });
    expect(await ours('-n', '--hex', '-k', a)).toEqual({ code: 0, stdout: '  PR generation=0x2, Additional length=16\n 00     00 00 00 00 00 00 00 aa  00 00 00 00 00 00 00 bb\n', stderr: '' });
    expect((await ours('-n', '-HH', '-r', a)).stdout).toBe(' 00     00 00 00 02 00 00 00 10  00 00 00 00 00 00 00 aa\n 10     00 00 00 00 00 05 00 00\n');
    expect(await ours('-n', '-o', '-C', '-K', 'aa', a)).toMatchObject({ code: 0 });
    expect((await ours('-n', '-k', b)).code).toBe(6);
  });

  it('refuses usage errors like sg_persist', async () => {
    expect(await ours('-n', '-o', '-I', a)).toMatchObject({ code: 0 });
    expect(await ours('-n', '-i', '-o', '-C', a)).toMatchObject({ code: 1, stderr: expect.stringMatching(/^choose '--in' _or_ '--out' \(not both\)\n/) });
    expect(await ours('-n', '-G', a)).toMatchObject({ code: 1, stderr: expect.stringMatching(/^PR Out service actions need '--out'\n/) });
    expect(await ours('-n', '-k', '--socket', join(dir, 'absent.sock'), a)).toMatchObject({ code: 52, stderr: expect.stringMatching(/absent\.sock does not exist/) });
  });

  it.skipIf(!requireTool('/usr/bin/sg_persist', 'sg3-utils'))('matches Debian\'s sg_persist byte for byte where no SCSI device is needed', async () => {
    const cases = [
      ['-n', '-k', join(dir, 'missing')],
      ['-n', '-o', '-G', '-S', 'zz', a],
      ['-n', '-o', '-G', '-K', 'not-hex', a],
      ['-n', '-o', '-R', '-T', 'x', a],
      ['--no-inquiry', '-k', '--readonly', join(dir, 'missing')],
    ];
    for (const args of cases) {
      const theirs = await exec('/usr/bin/sg_persist', args);
      expect(await ours(...args), args.join(' ')).toEqual(theirs);
    }
    // SG_IO on /dev/null fails with ENOTTY: sg_persist reports the errno, the helper
    // (here the daemon's real SG_IO backend) ABORTED COMMAND 00/06, which the front end
    // turns back into sg_persist's words and exit status 75.
    const sgio = await startDaemon(join(dir, 'sgio.sock'));
    try {
      for (const args of [['-n', '-k', '/dev/null'], ['--no-inquiry', '--out', '--register', '--param-sark=1', '/dev/null']]) {
        const theirs = await exec('/usr/bin/sg_persist', args);
        expect(theirs.code, args.join(' ')).toBe(75);
        expect(await exec(process.execPath, [DAEMON_ENTRY, 'sg_persist', ...args], { PR_HELPER_SOCKET: sgio.socket }), args.join(' ')).toEqual(theirs);
      }
    } finally {
      await sgio.stop();
    }
    const noDevice = [await exec('/usr/bin/sg_persist', ['-n']), await ours('-n')];
    expect(noDevice.map((r) => [r.code, r.stderr.split('\n')[0]])).toEqual([[1, 'No device name given'], [1, 'No device name given']]);
  });
});
