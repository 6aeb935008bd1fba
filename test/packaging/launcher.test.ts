/**
 * The sh launcher of the Debian package, run for real with this machine's
 * node: what the process it execs receives (arguments, environment, flags,
 * descriptors, pid).
 */
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LAUNCH_ENVIRONMENT, NODE_FLAGS, renderLauncher } from '../../scripts/deb/launcher.js';

const scratch = mkdtempSync(join(tmpdir(), 'prh-launcher-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Reports what it got; a quote and a space in its directory test the launcher's quoting. */
const PROBE_DIR = join(scratch, "it's here");
const PROBE = join(PROBE_DIR, 'probe.cjs');
const LAUNCHER = join(scratch, 'pr-helper');
mkdirSync(PROBE_DIR);
writeFileSync(
  PROBE,
  `const fs = require('fs');
const fds = fs.readdirSync('/proc/self/fd').map(Number).filter((fd) => fd > 2);
const target = (fd) => { try { return fs.readlinkSync('/proc/self/fd/' + fd); } catch { return null; } };
process.stdout.write(JSON.stringify({
  pid: process.pid, argv: process.argv.slice(2), execArgv: process.execArgv, nodeOptions: process.env.NODE_OPTIONS,
  kept: process.env.KEPT, fd3: target(3), targets: fds.map(target),
  environment: Object.fromEntries(${JSON.stringify(Object.keys(LAUNCH_ENVIRONMENT))}.map((name) => [name, process.env[name]])),
}));
`,
);
writeFileSync(LAUNCHER, renderLauncher(process.execPath, PROBE));
chmodSync(LAUNCHER, 0o755);

interface ProbeReport {
  pid: number;
  argv: string[];
  execArgv: string[];
  nodeOptions: string | undefined;
  kept: string | undefined;
  environment: Record<string, string | undefined>;
  fd3: string | null;
  targets: (string | null)[];
}

function runLauncher(args: string[], env: Record<string, string>, fd3: number): Promise<{ pid: number; report: ProbeReport }> {
  const child = spawn(LAUNCHER, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit', fd3] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve({ pid: child.pid!, report: JSON.parse(out) as ProbeReport }) : reject(new Error(`exit ${code}`))));
  });
}

describe('the launcher', () => {
  it('execs node in place with the fixed flags, every argument verbatim, no NODE_OPTIONS, and inherited descriptors open', async () => {
    const pidfile = join(scratch, 'vm1-pr-helper0.pid');
    writeFileSync(pidfile, '');
    const fd = openSync(pidfile, 'r');
    try {
      const args = ['-k', '/run/a b.sock', "it's", '$HOME', '*', '', '--', '-V'];
      const { pid, report } = await runLauncher(args, { NODE_OPTIONS: '--require /nonexistent.js', KEPT: 'yes' }, fd);
      expect(report.argv).toEqual(args);
      expect(report.execArgv).toEqual(NODE_FLAGS);
      expect(report.nodeOptions).toBe('');
      expect(report.kept).toBe('yes');
      expect(report.environment).toEqual(LAUNCH_ENVIRONMENT);
      // exec, not fork: LISTEN_PID, sd_notify's MAINPID and libvirt's pidfile name this pid.
      expect(report.pid).toBe(pid);
      // libvirt leaks its locked pidfile into the helper and checks the lock to know it runs.
      expect(report.fd3).toBe(pidfile);
      // sh keeps the script open on a close-on-exec descriptor: nothing of it reaches node.
      expect(report.targets).not.toContain(LAUNCHER);
    } finally {
      closeSync(fd);
    }
  });
});
