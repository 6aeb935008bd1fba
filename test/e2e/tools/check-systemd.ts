// Host-side assertions on the results of jobs/systemd.sh (the real-systemd tier): the
// Debian package installed under systemd as PID 1, pr-helper.service socket-activated by
// a real QEMU, serving PR commands on LIO with CAP_SYS_RAWIO alone, stopped cleanly.
// Usage: node dist/test/e2e/tools/check-systemd.js RESULTS.jsonl
import { HELPER_RESTART_STEPS, QEMU_SCENARIO_STEPS } from './qemu-scenario-steps.js';
import { Checker, type ResultLine, runChecks } from './results.js';

/** CAP_SYS_RAWIO is capability 17 (linux/capability.h): the one bit the service may hold. */
const CAP_SYS_RAWIO = 1n << 17n;
const CAP_SETS = ['inh', 'prm', 'eff', 'bnd', 'amb'] as const;


function main(c: Checker, results: ResultLine[]): void {
  c.equal('PID 1 is systemd', c.line('pid1').comm, 'systemd');
  c.equal('sg_persist REGISTER 0xbbbb via B: exit', c.line('sgp-register-b').rc, 0);

  const install = c.line('dpkg-install');
  c.equal('dpkg -i of the package: exit', install.rc, 0);
  c.equal('postinst enabled pr-helper.socket', install.socket_enabled, 'enabled');
  c.equal('postinst started pr-helper.socket', install.socket_active, 'active');
  const start = c.line('socket-start');
  c.equal('systemctl start pr-helper.socket: exit', start.rc, 0);
  c.equal('socket file /run/qemu-pr-helper.sock exists', start.socket_file, 1);
  c.equal('service not started before a client connects (socket activation)', start.service_active, 'inactive');

  for (const name of QEMU_SCENARIO_STEPS.filter((step) => !HELPER_RESTART_STEPS.includes(step))) {
    const r = c.line(name);
    c.check(`QEMU through the service: ${name}`, r.ok === true, r.failures);
  }
  c.equal('qtest driver exit status', c.line('driver-exit').rc, 0);

  const svc = c.line('service-running');
  c.equal('pr-helper.service ActiveState', svc.active, 'active');
  c.equal('pr-helper.service SubState', svc.sub, 'running');
  c.check('StatusText set (the daemon sent READY=1 with STATUS=)', typeof svc.status_text === 'string' && svc.status_text !== '', svc.status_text);
  c.equal('no restarts', svc.restarts, 0);
  c.equal('process name of the main pid', svc.comm, 'pr-helper');

  const threads = results.filter((r) => r.step === 'thread');
  c.check(`threads listed (${threads.length})`, threads.length >= 2, threads.length);
  for (const t of threads) {
    const sets = CAP_SETS.map((s) => BigInt(`0x${String(t[s])}`));
    c.check(`thread ${t.tid}: every capability set within CAP_SYS_RAWIO`, sets.every((v) => (v & ~CAP_SYS_RAWIO) === 0n), t);
    c.equal(`thread ${t.tid}: bounding set (CapabilityBoundingSet=CAP_SYS_RAWIO)`, t.bnd, '0000000000020000');
    c.equal(`thread ${t.tid}: uid (no User= in the unit)`, t.uid, '0 0 0 0');
    c.equal(`thread ${t.tid}: no supplementary groups`, t.groups, '');
  }
  // SG_IO threads start from the main thread and inherit its sets; the PR OUT commands
  // above succeeding on LIO proves the ones that ran held CAP_SYS_RAWIO.
  const main = threads.find((t) => t.tid === svc.main_pid);
  c.equal('main thread: CAP_SYS_RAWIO effective', main?.eff, '0000000000020000');

  const stopped = c.line('stopped');
  c.equal('systemctl stop pr-helper.service pr-helper.socket: exit', stopped.rc, 0);
  c.equal('service inactive', stopped.service, 'inactive');
  c.equal('socket inactive', stopped.socket, 'inactive');
  c.equal('main pid gone', stopped.pid_alive, 0);
  c.equal('no pr-helper process left', stopped.processes, 0);
  c.equal('no socket file left (RemoveOnStop=yes)', stopped.socket_file, 0);

  const journal = c.line('journal');
  c.check('journal: the daemon\'s own "accepting connections" line', Number(journal.accepting) >= 1, journal);
  c.check('journal: the daemon\'s own "stopping" and "stopped" lines', Number(journal.stopping) >= 1 && Number(journal.stopped) >= 1, journal);
  c.check('journal: pr-helper client read-keys on /dev/null failed', Number(c.line('client-devnull').rc) !== 0, c.line('client-devnull'));
  const priority = c.line('journal-priority');
  c.equal('journal: the SG_IO ENOTTY failure stored at PRIORITY 4 (warning)', priority.enotty_priority, 4);
  c.check('journal: journalctl -p warning shows the SG_IO failure', Number(priority.enotty_at_warning) >= 1, priority);
  c.equal('journal: journalctl -p warning leaves out info lines ("accepting connections")', priority.accepting_at_warning, 0);
}

runChecks('check-systemd.js', main);
