import { beforeAll, describe, expect, it } from 'vitest';
import { checkLines, expectAllPass, rigTierReady, runRigTier, type RigRun } from '../helpers/rig.js';

/*
 * The real-libvirt tier (test/e2e/run-libvirt.sh): Debian's libvirtd in the rig VM with
 * pr_helper = the installed package's /usr/bin/pr-helper, an L2 guest whose sg_persist goes
 * through QEMU and the helper libvirt starts, hot-unplug, a helper killed under a running
 * guest, virsh destroy. 5-7 minutes (the L2 guest runs TCG inside TCG), so not part of
 * npm test: `npm run test:e2e:libvirt` (vitest.libvirt.config.ts), which .ci/run runs.
 * Missing tools skip loudly here, but fail under CI.
 */
const TIMEOUT_MS = 16 * 60_000;

const ready = rigTierReady('the real-libvirt tier', [
  ['/usr/bin/sg_persist', 'sg3-utils'],
  ['/usr/sbin/libvirtd', 'libvirt-daemon-system'],
  ['/usr/bin/virsh', 'libvirt-clients'],
  ['/usr/bin/dpkg-gencontrol', 'dpkg-dev'],
]);

describe.skipIf(!ready)('end to end: libvirt 9.0 starts our packaged helper for a guest with managed reservations (run-libvirt.sh)', () => {
  let result: RigRun;

  beforeAll(async () => {
    result = await runRigTier('test/e2e/run-libvirt.sh', {}, TIMEOUT_MS);
  }, TIMEOUT_MS);

  const allPass = (pattern: RegExp, atLeast: number): void => expectAllPass(checkLines(result.output, (l) => pattern.test(l)), atLeast);

  it('libvirt starts the helper on its -k socket, QEMU connects, libvirt\'s pidfile lock stays held', () => {
    allPass(/libvirtd|virsh create l2a|started a pr-helper|-k path|query-pr-managers|pidfile/, 6);
  });

  it('every thread of that helper holds nothing but CAP_SYS_RAWIO', () => {
    allPass(/thread/, 4);
  });

  it('the L2 guest registers and takes an Exclusive Access reservation through QEMU and the helper', () => {
    allPass(/L2:|other node/, 9);
  });

  it('detaching the reservation disk of a second domain stops that domain\'s helper only', () => {
    allPass(/--paused idle|second (helper|domain)|detach-device|disk is gone|that domain|still runs/, 6);
  });

  it('after the helper is killed, libvirt brings one back and the guest\'s PR commands work again', () => {
    allPass(/killed|marker|after the kill|kept running/, 5);
  });

  it('virsh destroy leaves no helper process', () => {
    allPass(/virsh destroy|no pr-helper/, 2);
  });

  it('run-libvirt.sh passes', () => {
    expect(result.output).toMatch(/^PASS libvirt/m);
    expect(result.code).toBe(0);
  });
});
