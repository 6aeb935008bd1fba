// Host-side assertions on the results of jobs/smoke-real-helper.sh.
// Usage: node dist/test/e2e/tools/check-smoke.js RESULTS.jsonl  (exit 0 = all passed)
import { Checker, decodeReadKeys, decodeReadReservation, runChecks, senseTriple } from './results.js';

const GOOD = 0x00;
const CHECK_CONDITION = 0x02;
const RESERVATION_CONFLICT = 0x18;

function main(c: Checker): void {

  const lio = c.line('lio-setup');
  c.check('lio-setup: two distinct disks', typeof lio.disk_a === 'string' && lio.disk_a !== lio.disk_b, lio);
  c.equal('lio-setup: initiator A', lio.init_a, 'naa.50014050000000a1');
  c.equal('lio-setup: initiator B', lio.init_b, 'naa.50014050000000a2');

  c.equal('sg_persist REGISTER 0xaaaa via A: exit', c.line('sgp-register-a').rc, 0);
  c.equal('sg_persist REGISTER 0xbbbb via B: exit', c.line('sgp-register-b').rc, 0);
  c.equal('sg_persist READ KEYS via A: keys', c.line('sgp-read-keys-a').keys, '0xaaaa 0xbbbb');
  c.equal('helper started', c.line('helper-start').ok, 1);

  // PR IN through the helper sees the keys registered directly on both nexuses.
  for (const name of ['prh-read-keys-a', 'prh-read-keys-b-rdonly']) {
    const r = c.line(name);
    c.equal(`${name}: server features`, r.features, '00000000');
    c.equal(`${name}: result`, r.result, GOOD);
    c.equal(`${name}: size is the real transfer, not the allocation length`, r.size, 24);
    c.equal(`${name}: keys`, decodeReadKeys(String(r.data))?.keys, ['aaaa', 'bbbb']);
  }

  // PR OUT through the helper changes the LUN as seen from the other nexus.
  const reserve = c.line('prh-reserve-a');
  c.equal('prh-reserve-a: result', reserve.result, GOOD);
  c.equal('prh-reserve-a: size', reserve.size, 0);
  const seen = c.line('sgp-read-reservation-b');
  c.equal('sg_persist READ RESERVATION via B: holder key', seen.key, '0xaaaa');
  c.equal('sg_persist READ RESERVATION via B: type', seen.type, 'Write Exclusive');

  const conflict = c.line('prh-reserve-b-conflict');
  c.equal('prh-reserve-b-conflict: result is RESERVATION CONFLICT', conflict.result, RESERVATION_CONFLICT);
  c.equal('prh-reserve-b-conflict: size', conflict.size, 0);

  const rr = c.line('prh-read-reservation-b');
  c.equal('prh-read-reservation-b: result', rr.result, GOOD);
  c.equal('prh-read-reservation-b: reservation', decodeReadReservation(String(rr.data)), {
    generation: 2, key: 'aaaa', scope: 0, type: 1,
  });

  // PR OUT over an O_RDONLY descriptor is refused by the helper itself (protocol §2.4).
  const ro = c.line('prh-register-rdonly');
  c.equal('prh-register-rdonly: result', ro.result, CHECK_CONDITION);
  c.equal('prh-register-rdonly: sense = ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE',
    senseTriple(String(ro.sense)), [0x05, 0x20, 0x00]);
  c.equal('prh-register-rdonly: sense bytes 18..95 zero', ro.sense_rest_zero, true);

  c.equal('prh-release-a: result', c.line('prh-release-a').result, GOOD);
  c.equal('sg_persist READ RESERVATION after release: no holder', c.line('sgp-read-reservation-after-release').key, '');
  c.equal('helper stopped', c.line('helper-stop').ok, 1);
}

runChecks('check-smoke.js', main);
