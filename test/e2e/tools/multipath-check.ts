// Host-side assertions on the results of jobs/multipath.sh (tools/multipath-scenario.ts).
// Usage: node dist/test/e2e/tools/multipath-check.js RESULTS.jsonl  (exit 0 = all passed)
// Each scenario step carries what it must produce ("expect"); this compares status,
// sense, facts (registrations per nexus as READ FULL STATUS from node B shows them,
// the reservation, keys) and latency bounds, and insists on every required step.
import { REQUIRED_STEPS, type StepExpectation } from './multipath-scenario.js';
import { Checker, type ResultLine, runChecks } from './results.js';

function main(c: Checker, results: ResultLine[]): void {

  const setup = c.line('setup');
  c.check('setup: the map is a dm device with an mpath- uuid', typeof setup.uuid === 'string' && setup.uuid.startsWith('mpath-'), setup);
  c.equal('setup: the map\'s slaves are node A\'s two paths', String(setup.slaves).split(' ').sort(), [setup.path_a1, setup.path_a2].map(String).sort());
  c.check('setup: node B uses a third disk', setup.disk_b !== setup.path_a1 && setup.disk_b !== setup.path_a2, setup);
  c.check('setup: multipath table', /multipath .*round-robin/.test(String(setup.table)), setup.table);
  c.equal('helper started', c.line('helper-start').ok, 1);

  const error = results.find((r) => r.step === 'scenario-error');
  c.check('scenario: no client error', error === undefined, error?.error);
  c.check('scenario: ran to the end', results.some((r) => r.step === 'scenario-end'));

  // Every required step present, in order.
  const seen = results.map((r) => r.step).filter((s): s is string => typeof s === 'string');
  let at = -1;
  for (const name of REQUIRED_STEPS) {
    const index = seen.indexOf(name);
    c.check(`${name}: present, in order`, index > at, index);
    if (index > at) at = index;
  }

  for (const line of results) {
    const expect = line.expect as StepExpectation | undefined;
    if (!expect) continue;
    checkStep(c, line, expect);
  }

  c.equal('scenario exit status', c.line('scenario').rc, 0);
  const unpriv = c.line('unprivileged-probe');
  c.equal('unprivileged daemon (-u nobody): probe ran', unpriv.rc, 0);
  c.equal('unprivileged daemon (-u nobody): logs how to grant access to the paths', unpriv.log_hint, 1);
  c.equal('unprivileged daemon (-u nobody): still running', unpriv.alive, 1);
  c.equal('helper still running after the scenario (no path failure stopped it)', c.line('helper-alive-after-scenario').ok, 1);
}

function checkStep(c: Checker, line: ResultLine, expect: StepExpectation): void {
  const name = String(line.step);
  c.equal(`${name}: status`, line.status, expect.status);
  if (expect.sense) c.equal(`${name}: sense key/ASC/ASCQ`, line.sense, expect.sense);
  const facts = (line.facts ?? {}) as Record<string, unknown>;
  for (const [key, want] of Object.entries(expect.facts ?? {})) c.equal(`${name}: ${key}`, facts[key], want);
  if (expect.maxMs !== undefined) c.check(`${name}: answered within ${expect.maxMs} ms`, Number(line.ms) <= expect.maxMs, line.ms);
}

runChecks('multipath-check.js', main);
