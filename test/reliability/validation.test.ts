// Configuration and state files are validated with clear one-line errors:
// the daemon binary, started on bad input, fails with exit status 1 and one
// stderr line naming the file and what is wrong (and leaves no socket); a bad
// state file is kept aside with one warning line naming the problem, and the
// LUN starts empty and persists cleanly again.
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, symlinkSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HelperClient } from '../../src/client/client.js';
import { PrInAction, PrOutAction } from '../../src/scsi/pr-codes.js';
import { basicParams, prInCdb, prOutCdb } from '../fixtures/scsi-bytes.js';
import { DAEMON_ENTRY, startDaemon } from '../helpers/daemon.js';
import { waitFor } from '../helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'rel-valid-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const disk = join(dir, 'disk.img');
writeFileSync(disk, Buffer.alloc(512));
symlinkSync(disk, `${disk}.link`);

function run(args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [DAEMON_ENTRY, ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
    child.stdin?.end();
  });
}

const lun = (paths: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> => ({ name: 'lun0', paths, ...extra });
const path0 = { path: disk, initiator: 'iqn.2024-01.test:a' };

/** [name, config text (or null: no file), expected message part] */
const BAD_CONFIGS: Array<[string, string | null, RegExp]> = [
  ['malformed JSON', '{"luns": [', /is not valid JSON/],
  ['a JSON array at the top', '[]', /the top level must be a JSON object/],
  ['luns missing', '{}', /luns is missing/],
  ['luns empty', '{"luns": []}', /luns must be a non-empty array/],
  ['a LUN name that is a number', JSON.stringify({ luns: [{ name: 7, paths: [path0] }] }), /luns\[0\]\.name must be/],
  ['a LUN name with a slash', JSON.stringify({ luns: [lun([path0], { name: '../x' })] }), /luns\[0\]\.name must be/],
  ['targetPort as a string', JSON.stringify({ luns: [lun([{ ...path0, targetPort: '1' }])] }), /luns\[0\]\.paths\[0\]\.targetPort must be an integer from 1 to 65535/],
  ['targetPort 0', JSON.stringify({ luns: [lun([{ ...path0, targetPort: 0 }])] }), /targetPort must be an integer from 1 to 65535/],
  ['a relative stateDir', JSON.stringify({ stateDir: 'state', luns: [lun([path0])] }), /stateDir must be an absolute path/],
  ['stateDir as a number', JSON.stringify({ stateDir: 5, luns: [lun([path0])] }), /stateDir must be an absolute path/],
  ['a relative image path', JSON.stringify({ luns: [lun([{ ...path0, path: 'disk.img' }])] }), /luns\[0\]\.paths\[0\]\.path must be an absolute path/],
  ['an unknown key', JSON.stringify({ lunz: [], luns: [lun([path0])] }), /lunz is not a known key/],
  ['an invalid initiator', JSON.stringify({ luns: [lun([{ ...path0, initiator: 'not-an-iqn' }])] }), /luns\[0\]\.paths\[0\]\.initiator is invalid/],
  // Like every other config error, these must say which file and which JSON location.
  ['an image that does not exist', JSON.stringify({ luns: [lun([{ ...path0, path: '/nonexistent/disk.img' }])] }), /luns\[0\]\.paths\[0\]\.path.*\/nonexistent\/disk\.img.*(ENOENT|no such file)/i],
  ['two paths that are the same file', JSON.stringify({ luns: [lun([path0, { path: `${disk}.link`, initiator: 'iqn.2024-01.test:b' }])] }), /luns\[0\]\.paths\[1\]\.path.*same file/],
  ['no config file', null, /(ENOENT|no such file)/i],
];

describe('--simulate CONFIG rejects bad configuration with one clear line', () => {
  for (const [i, [name, text, message]] of BAD_CONFIGS.entries()) {
    it(name, async () => {
      const config = join(dir, `bad-${i}.json`);
      if (text !== null) writeFileSync(config, text);
      const socket = join(dir, `bad-${i}.sock`);
      const { code, stderr, stdout } = await run(['-k', socket, '--simulate', config]);
      expect(code).toBe(1);
      expect(stdout).toBe('');
      const lines = stderr.split('\n').filter((l) => l !== '');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^pr-helper: /);
      expect(lines[0]).toContain(config.split('/').pop()!.replace('.json', ''));
      expect(lines[0]).toMatch(message);
      expect(existsSync(socket)).toBe(false);
    });
  }

  it('a config that is a directory', async () => {
    const config = join(dir, 'config-dir');
    mkdirSync(config);
    const { code, stderr } = await run(['-k', join(dir, 'cd.sock'), '--simulate', config]);
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^pr-helper: config .*config-dir.*EISDIR/);
  });
});

describe('a bad state file is kept aside with one warning line, and the LUN starts clean', () => {
  const BAD_STATES: Array<[string, string, RegExp]> = [
    ['empty', '', /JSON/],
    ['torn (cut mid-write)', '{"version":1,"generation":3,"aptpl":true,"registrations":[{"initia', /JSON/],
    ['a future version', JSON.stringify({ version: 2, generation: 1, aptpl: true, registrations: [], reservation: null }), /state\.version/],
    ['a key that is not hex', JSON.stringify({ version: 1, generation: 1, aptpl: true, registrations: [{ initiator: { protocol: 'iscsi', name: 'iqn.2024-01.test:a' }, targetPort: 1, key: 'zz', allTgPt: false }], reservation: null }), /registrations|key|initiator/],
    ['a negative generation', JSON.stringify({ version: 1, generation: -1, aptpl: true, registrations: [], reservation: null }), /state\.generation/],
  ];

  for (const [i, [name, content, field]] of BAD_STATES.entries()) {
    it(name, async () => {
      const stateDir = join(dir, `state-${i}`);
      mkdirSync(stateDir, { recursive: true });
      const file = join(stateDir, 'lun0.pr-state.json');
      writeFileSync(file, content);
      const config = join(dir, `state-${i}.json`);
      writeFileSync(config, JSON.stringify({ stateDir, luns: [lun([path0])] }));
      const daemon = await startDaemon(join(dir, `state-${i}.sock`), ['--simulate', config]);
      try {
        const warnings = daemon
          .stderr()
          .split('\n')
          .filter((l) => l.includes('state file'));
        expect(warnings).toHaveLength(1);
        const w = JSON.parse(warnings[0]!) as { level: number; msg: string; file: string; keptAs: string; err: { message: string } };
        expect(w).toMatchObject({ level: 40, file, keptAs: `${file}.corrupt-1` });
        expect(w.msg).toMatch(/kept aside/);
        expect(w.err.message).toMatch(field);
        expect(readFileSync(`${file}.corrupt-1`, 'utf8')).toBe(content);
        expect(existsSync(file)).toBe(false);

        const client = await HelperClient.connect(daemon.socket);
        const fd = openSync(disk, 'r+');
        const keys = await client.execute(prInCdb(PrInAction.READ_KEYS, 64), fd);
        expect(keys.data.subarray(4, 8).readUInt32BE(0)).toBe(0);
        // The next APTPL change writes a fresh, valid file; the kept copy stays.
        const reg = await client.execute(prOutCdb(PrOutAction.REGISTER, 0, 24), fd, basicParams({ saKey: 0xabcn, aptpl: true }));
        expect(reg.status).toBe(0);
        closeSync(fd);
        client.close();
        expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ version: 1, aptpl: true, registrations: [{ key: '0000000000000abc' }] });
        expect(readdirSync(stateDir).sort()).toEqual(['lun0.pr-state.json', 'lun0.pr-state.json.corrupt-1']);
      } finally {
        expect(await daemon.stop()).toBe(0);
      }
    });
  }
});

describe('planted state files and an open stateDir', () => {
  it('a symlink to a secret and a FIFO at the state file are refused without following, blocking or logging content', async () => {
    const stateDir = join(dir, 'plant');
    mkdirSync(stateDir, { mode: 0o700 });
    const secret = join(dir, 'secret');
    writeFileSync(secret, 'root:SECRET-HASH:20228\n', { mode: 0o600 });
    symlinkSync(secret, join(stateDir, 'lun0.pr-state.json'));
    execFileSync('mkfifo', [join(stateDir, 'lun1.pr-state.json')]);
    const config = join(dir, 'plant.json');
    writeFileSync(config, JSON.stringify({ stateDir, luns: [lun([path0]), { name: 'lun1', paths: [{ path: join(dir, 'disk1.img'), initiator: 'iqn.2024-01.test:b' }] }] }));
    writeFileSync(join(dir, 'disk1.img'), '');
    const daemon = await startDaemon(join(dir, 'plant.sock'), ['--simulate', config]);
    try {
      const warnings = (): string[] => daemon.stderr().split('\n').filter((l) => l.includes('state file'));
      // The log is written once per event-loop turn: wait for both lines.
      expect(await waitFor(() => warnings().length === 2)).toBe(true);
      expect(warnings().map((l) => (JSON.parse(l) as { err: { message: string } }).err.message).sort()).toEqual(['it is a symbolic link', 'it is not a regular file']);
      expect(daemon.stderr()).not.toContain('SECRET');
      expect(readFileSync(secret, 'utf8')).toBe('root:SECRET-HASH:20228\n');
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });

  it('a stateDir others may write is refused with one line, exit 1', async () => {
    const stateDir = join(dir, 'open-state');
    mkdirSync(stateDir);
    chmodSync(stateDir, 0o777);
    const config = join(dir, 'open-state.json');
    writeFileSync(config, JSON.stringify({ stateDir, luns: [lun([path0])] }));
    const { code, stderr } = await run(['-k', join(dir, 'os.sock'), '--simulate', config]);
    expect({ code, stderr }).toEqual({ code: 1, stderr: `pr-helper: stateDir ${stateDir}: it is writable by others (mode 0777); refusing to read PR state from it\n` });
  });
});
