import { beforeAll, describe, expect, it } from 'vitest';
import { DAEMON_ENTRY } from '../helpers/daemon.js';
import { checkLines, expectAllPass as allPass, rigTierReady, runRigTier, type RigRun } from '../helpers/rig.js';

/*
 * pr-helper validate and pr-helper sg_persist on real LIO (test/e2e/run-validate-lio.sh):
 * in the rig VM one LIO LUN behind three tcm_loop nexuses, our daemon on the socket.
 * validate's profiles, its diagnosis of a missing <db_root>/pr, a SIGKILLed run and
 * what removes its keys, and pr-helper sg_persist against Debian's sg_persist. A few
 * minutes under TCG, longer when another VM shares the cores. Needs root (9p
 * passthrough), QEMU, a Debian kernel, busybox and sg3-utils: missing ones skip
 * loudly here, but fail under CI.
 */
const TIMEOUT_MS = 16 * 60_000;

const ready = rigTierReady('the validate-lio tier', [['/usr/bin/sg_persist', 'sg3-utils']]);

function runTier(): Promise<RigRun> {
  // npm test has compiled everything; another e2e file may be compiling at the same time.
  return runRigTier('test/e2e/run-validate-lio.sh', { HELPER_CMD: `${process.execPath} ${DAEMON_ENTRY}`, RIG_SKIP_TSC: '1', RIG_TIMEOUT: String(TIMEOUT_MS / 1000 - 45) }, TIMEOUT_MS, /checks passed|^ {5}|^PASS|caches/);
}

describe.skipIf(!ready)('end to end: pr-helper validate and sg_persist on LIO through our daemon (run-validate-lio.sh)', () => {
  let result: RigRun;

  beforeAll(async () => {
    result = await runTier();
  }, TIMEOUT_MS);

  const checks = (...prefixes: string[]): string[] => checkLines(result.output, (l) => prefixes.some((p) => l.startsWith(p)));

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
