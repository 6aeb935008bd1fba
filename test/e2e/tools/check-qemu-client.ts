// Host-side assertions on the results of jobs/qemu-client.sh (tier 2). The scenario in
// qtest-virtio-scsi.ts checks each step as it goes; here we require that every step
// ran and passed, so a driver that died half-way cannot look like a pass.
// Usage: node dist/test/e2e/tools/check-qemu-client.js RESULTS.jsonl
import { QEMU_SCENARIO_STEPS } from './qemu-scenario-steps.js';
import { Checker, runChecks, senseTriple } from './results.js';


function main(c: Checker): void {
  c.equal('lio-setup: initiator A', c.line('lio-setup').init_a, 'naa.50014050000000a1');
  c.equal('sg_persist REGISTER 0xbbbb via B: exit', c.line('sgp-register-b').rc, 0);
  c.equal('helper started', c.line('helper-start').ok, 1);
  for (const name of QEMU_SCENARIO_STEPS) {
    const r = c.line(name);
    c.check(`${name}: passed in the VM`, r.ok === true, r.failures);
  }
  // Spot checks on what the guest saw, independent of the driver's own verdicts.
  const tur = c.line('tur-unit-attention').tur as { status?: number; sense?: string } | undefined;
  c.equal('first TEST UNIT READY: sense key/ASC/ASCQ (power on, reset)', senseTriple(tur?.sense ?? ''), [0x06, 0x29, 0x00]);
  const conflict = c.line('conflict-reaches-guest').reserve as { status?: number } | undefined;
  c.equal('guest RESERVE while B holds: status RESERVATION CONFLICT', conflict?.status, 0x18);
  c.equal('driver exit status', c.line('driver-exit').rc, 0);
}

runChecks('check-qemu-client.js', main);
