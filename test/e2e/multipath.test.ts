import { beforeAll, describe, expect, it } from 'vitest';
import { DAEMON_ENTRY } from '../helpers/daemon.js';
import { checkLines, expectAllPass, rigTierReady, runRigTier, type RigRun } from '../helpers/rig.js';

/*
 * The dm-multipath tier (test/e2e/run-multipath.sh) with our daemon: in the rig VM, one
 * LIO LUN behind three tcm_loop nexuses, node A on a dm-multipath map over two of them,
 * node B (the other cluster node) on the third; registrations must reach both of A's
 * paths, reserve/preempt/release must work through the map, and PR IN/OUT must keep
 * working with a path offline or with its transport down. About 30 s on the project's
 * 2-core machine. Needs root (9p passthrough), QEMU, a Debian kernel, busybox,
 * sg3-utils and dmsetup: missing ones skip loudly here, but fail under CI.
 */
const TIMEOUT_MS = 5 * 60_000;

const ready = rigTierReady('the multipath tier', [
  ['/usr/bin/sg_turs', 'sg3-utils'],
  ['/usr/sbin/dmsetup', 'dmsetup'],
]);

function runTier(): Promise<RigRun> {
  // Our daemon; npm test has compiled everything, and another e2e file may be
  // compiling at the same time, so the tier does not run tsc itself.
  return runRigTier('test/e2e/run-multipath.sh', { HELPER_CMD: `${process.execPath} ${DAEMON_ENTRY}`, RIG_SKIP_TSC: '1' }, TIMEOUT_MS);
}

describe.skipIf(!ready)('end to end: dm-multipath map over two LIO paths, a second node, our daemon (run-multipath.sh)', () => {
  let result: RigRun;

  beforeAll(async () => {
    result = await runTier();
  }, TIMEOUT_MS);

  const checks = (prefix: string): string[] => checkLines(result.output, (l) => l.startsWith(prefix));

  it('REGISTER through the map registers both of its nexuses (READ FULL STATUS from node B)', () => {
    const lines = checks('a-register:').concat(checks('b-register:'));
    expectAllPass(lines, 1);
  });

  it('reserve, preempt and register-and-move through the map, both ways between the nodes', () => {
    const lines = ['a-reserve:', 'b-reserve-conflict:', 'b-preempt:', 'a-read-keys-ua:', 'a-register-again:', 'a-preempt:', 'a-register-and-move:'].flatMap(checks);
    expectAllPass(lines, 7);
  });

  it('with one path offline or its transport down, PR IN and PR OUT succeed through the other', () => {
    const lines = ['a-read-keys-path-offline', 'a-reserve-holder-offline', 'a-release-holder-offline', 'a-register-key-change',
      'a-read-keys-transport-down', 'a-release-transport-down', 'a-reserve-transport-down', 'a-register-after-transport'].flatMap(checks);
    expectAllPass(lines, 8);
  });

  it('a failing path blocks no other client and never stops the daemon; no access to the paths is a clean CHECK CONDITION', () => {
    const lines = ['b-read-keys-transport-down', 'helper still running', 'unprivileged'].flatMap(checks);
    expectAllPass(lines, 8);
  });

  it('run-multipath.sh passes', () => {
    expect(result.output).toMatch(/^PASS multipath/m);
    expect(result.code).toBe(0);
  });
});
