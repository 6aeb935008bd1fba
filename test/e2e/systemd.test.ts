import { beforeAll, describe, expect, it } from 'vitest';
import { checkLines, expectAllPass, rigTierReady, runRigTier, type RigRun } from '../helpers/rig.js';

/*
 * The real-systemd tier (test/e2e/run-systemd.sh): the rig VM boots with systemd as PID 1,
 * installs the Debian package built from this checkout, and a real QEMU reaches our daemon
 * through pr-helper.socket: socket activation, READY, CAP_SYS_RAWIO only in every thread,
 * PR commands on an LIO LUN, a clean systemctl stop, the journal. About 1.5-2 minutes on
 * the project's 2-core machine. Missing tools skip loudly here, but fail under CI.
 */
const TIMEOUT_MS = 5 * 60_000;

const ready = rigTierReady('the real-systemd tier', [
  ['/usr/bin/sg_persist', 'sg3-utils'],
  ['/lib/systemd/systemd', 'systemd'],
  ['/usr/bin/dpkg-gencontrol', 'dpkg-dev'],
]);

describe.skipIf(!ready)('end to end: the Debian package under a real systemd, real QEMU, LIO (run-systemd.sh)', () => {
  let result: RigRun;

  beforeAll(async () => {
    // npm test has compiled everything; another e2e file may be compiling at the same time.
    result = await runRigTier('test/e2e/run-systemd.sh', { RIG_SKIP_TSC: '1' }, TIMEOUT_MS);
  }, TIMEOUT_MS);

  const allPass = (pattern: RegExp, atLeast: number): void => expectAllPass(checkLines(result.output, (l) => pattern.test(l)), atLeast);

  it('dpkg installs the package and its postinst enables and starts pr-helper.socket under systemd as PID 1', () => {
    allPass(/PID 1 is systemd|dpkg -i|postinst/, 4);
  });

  it('a real QEMU connects through the socket and its PR commands reach the LIO LUN', () => {
    allPass(/socket activation|QEMU through the service|qtest driver/, 12);
  });

  it('the service is active with a StatusText, and every thread holds nothing but CAP_SYS_RAWIO', () => {
    allPass(/pr-helper\.service|StatusText|restarts|process name|thread/, 10);
  });

  it('systemctl stop leaves no process and no socket file; the journal has the daemon\'s start and stop lines', () => {
    allPass(/systemctl stop|inactive|gone|left|journal/, 8);
  });

  it('run-systemd.sh passes', () => {
    expect(result.output).toMatch(/^PASS systemd/m);
    expect(result.code).toBe(0);
  });
});
