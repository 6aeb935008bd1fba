// Host-side assertions on jobs/guest.sh (Tier 3): sg_persist inside a real L2 Linux guest
// reached LIO through virtio-scsi, QEMU's scsi-block, pr-manager-helper and the helper
// under test, and the other nexus sees the result.
// Usage: node dist/test/e2e/tools/check-guest.js RESULTS.jsonl
import { Checker, runChecks } from './results.js';

function main(c: Checker): void {
  c.equal('lio-setup: initiator A', c.line('lio-setup').init_a, 'naa.50014050000000a1');
  c.equal('sg_persist REGISTER 0xbbbb via B (L1): exit', c.line('sgp-register-b').rc, 0);
  c.equal('helper started', c.line('helper-start').ok, 1);
  const exit = c.line('l2-exit');
  c.equal('L2 QEMU exit status (guest powered off by itself)', exit.rc, 0);
  console.log(`     L2 guest ran ${String(exit.seconds)} s`);
  c.equal('L2: found its SCSI disk', c.line('l2-disk').ok, 1);

  const keys = c.line('l2-read-keys');
  c.equal('L2 READ KEYS: exit', keys.rc, 0);
  c.check('L2 sees the LIO disk (INQUIRY through scsi-block)', /LIO-ORG/.test(String(keys.inquiry)), keys.inquiry);
  c.equal('L2 READ KEYS: the other node\'s key', keys.keys, '0xbbbb');
  c.equal('L2 REGISTER 0xc0ffee: exit', c.line('l2-register').rc, 0);
  c.equal('L2 READ KEYS after REGISTER', c.line('l2-read-keys-after-register').keys, '0xbbbb 0xc0ffee');
  c.equal('L2 RESERVE Exclusive Access: exit', c.line('l2-reserve-ea').rc, 0);
  const res = c.line('l2-read-reservation');
  c.equal('L2 READ RESERVATION: holder and type', [res.rc, res.key, res.type], [0, '0xc0ffee', 'Exclusive Access']);

  // From nexus B in L1: the guest's registration is the holder, via initiator A.
  const full = c.line('sgp-read-full-status-b');
  c.equal('L1 READ FULL STATUS via B: exit', full.rc, 0);
  const descriptors = String(full.text ?? '').split(/\|(?=\s*Key=)/);
  const guest = descriptors.find((d) => /Key=0xc0ffee\b/.test(d)) ?? '';
  c.check('L1 via B: 0xc0ffee is the reservation holder', /Reservation holder/.test(guest), guest);
  c.check('L1 via B: ... of type Exclusive Access', /Exclusive Access/.test(guest), guest);
  c.check('L1 via B: ... registered through initiator A (naa.50014050000000a1)', /50014050000000a1/.test(guest), guest);
  c.equal('L1 RESERVE via B while the guest holds EA: RESERVATION CONFLICT (sg3_utils exit 24)', c.line('sgp-reserve-b').rc, 24);
  c.equal('L1 CLEAR via B (clean-up): exit', c.line('sgp-clear-b').rc, 0);
  c.equal('helper stopped', c.line('helper-stop').ok, 1);
  if (/main\.js/.test(String(c.line('helper-start').cmd))) {
    // The guest's five sg_persist PR commands, and nothing else, went through our daemon.
    c.equal('our daemon served the guest\'s PR commands (requests logged)', c.line('helper-log').requests, 5);
  }
}

runChecks('check-guest.js', main);
