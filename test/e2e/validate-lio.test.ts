import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DAEMON_ENTRY, requireRoot, requireTool } from '../helpers/daemon.js';
import { REPO_ROOT } from '../helpers/repo-root.js';
import { kernelImage, runRigScript, type RigRun } from '../helpers/rig.js';

/*
 * pr-helper validate and pr-helper sg_persist on real LIO (test/e2e/run-validate-lio.sh):
 * in the rig VM one LIO LUN behind three tcm_loop nexuses, our daemon on the socket.
 * validate's profiles, its diagnosis of a missing <db_root>/pr, a SIGKILLed run and
 * what removes its keys, and pr-helper sg_persist against Debian's sg_persist. A few
 * minutes under TCG, longer when another VM shares the cores. Needs root (9p
 * passthrough), QEMU, a Debian kernel, busybox and sg3-utils: missing ones skip
 * loudly here, but fail under CI.
 */
const RUN = join(REPO_ROOT, 'test/e2e/run-validate-lio.sh');
const TIMEOUT_MS = 16 * 60_000;

const ready =
  requireRoot('the validate-lio tier', 'the rig VM mounts / with 9p security_model=passthrough') &&
  requireTool('/usr/bin/qemu-system-x86_64', 'qemu-system-x86') &&
  requireTool(kernelImage(), 'linux-image-amd64') &&
  requireTool('/bin/busybox', 'busybox-static') &&
  requireTool('/usr/bin/sg_persist', 'sg3-utils');

function runTier(): Promise<RigRun> {
  // npm test has compiled everything; another e2e file may be compiling at the same time.
  return runRigScript(RUN, { HELPER_CMD: `${process.execPath} ${DAEMON_ENTRY}`, RIG_SKIP_TSC: '1', RIG_TIMEOUT: String(TIMEOUT_MS / 1000 - 45) }, TIMEOUT_MS, REPO_ROOT);
}

describe.skipIf(!ready)('end to end: pr-helper validate and sg_persist on LIO through our daemon (run-validate-lio.sh)', () => {
  let result: RigRun;

  beforeAll(async () => {
    result = await runTier();
    if (result.code !== 0) console.log(result.output);
    else console.log(result.output.split('\n').filter((l) => /checks passed|^ {5}|^PASS|caches/.test(l)).join('\n'));
  }, TIMEOUT_MS);

  const checks = (...prefixes: string[]): string[] =>
    result.output.split('\n').filter((l) => /^(ok  |FAIL) /.test(l) && prefixes.some((p) => l.slice(5).startsWith(p)));
  const allPass = (lines: string[], atLeast: number): void => {
    expect(lines.length).toBeGreaterThanOrEqual(atLeast);
    expect(lines.filter((l) => l.startsWith('FAIL'))).toEqual([]);
  };

  it('validate passes: wsfc with two nexuses, fence_scsi and all with one, and leaves no key or reservation', () => {
    allPass(checks('validate wsfc', 'validate fence_scsi-one', 'validate all-one'), 15);
  });

  it('without LIO\'s pr/ directory validate fails at the first REGISTER with the LIO cause and fix, and cleans up', () => {
    allPass(checks('no pr/ dir', 'dbroot'), 7);
  });

  it('a SIGKILLed run leaves its keys; the next run refuses, naming them; a --force run removes them', () => {
    allPass(checks('killed run', 'next run', '--force run'), 8);
  });

  it('pr-helper sg_persist matches Debian\'s sg_persist: stdout byte for byte or as justified, exit statuses, both spellings', () => {
    allPass(checks('sg_persist', 'debian ', 'ours ', 'pr-helper sg_persist'), 100);
  });

  it('run-validate-lio.sh passes', () => {
    expect(result.output).toMatch(/^PASS validate-lio/m);
    expect(result.code).toBe(0);
  });
});
