// SG_IO mode (no --simulate) refuses to start without CAP_SYS_RAWIO: one clear
// line on stderr, exit status 1, and no socket file left behind.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAEMON_ENTRY, requireTool } from '../helpers/daemon.js';

const SETPRIV = '/usr/bin/setpriv';
const canRun = process.getuid?.() === 0 && requireTool(SETPRIV, 'util-linux');

interface Outcome {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

function run(argv: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: 10_000 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: string }) | null;
      resolve({
        code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
        signal: e?.signal ?? null,
        stdout,
        stderr,
      });
    });
  });
}

describe.runIf(canRun)('SG_IO mode without CAP_SYS_RAWIO', () => {
  let dir: string;

  beforeAll(() => {
    // The unprivileged user must be able to create its socket here.
    dir = mkdtempSync(join(tmpdir(), 'sgio-startup-'));
    chmodSync(dir, 0o1777);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const cases: Array<[string, string[]]> = [
    ['as nobody (uid/gid 65534, no capabilities)', [SETPRIV, '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all']],
    ['as root with CAP_SYS_RAWIO dropped from the bounding set', [SETPRIV, '--inh-caps=-sys_rawio', '--bounding-set=-sys_rawio']],
  ];

  it.each(cases)('%s: one line on stderr, exit status 1, no socket', async (name, wrapper) => {
    const socket = join(dir, `${name.startsWith('as nobody') ? 'nobody' : 'root'}.sock`);
    const result = await run([...wrapper, process.execPath, DAEMON_ENTRY, '-k', socket]);
    expect(result.signal).toBeNull();
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    const lines = result.stderr.split('\n');
    expect(lines.at(-1)).toBe(''); // newline-terminated
    expect(lines.slice(0, -1)).toHaveLength(1);
    expect(lines[0]).toMatch(/^pr-helper: \S/);
    expect(lines[0]).toMatch(/^pr-helper: .*CAP_SYS_RAWIO/);
    expect(lines[0]).toMatch(/--simulate/); // tells the user the way out
    expect(existsSync(socket)).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });
});
