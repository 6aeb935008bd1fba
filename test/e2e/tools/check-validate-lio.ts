// Host-side assertions on the results of jobs/validate-lio.sh: pr-helper validate and
// pr-helper sg_persist on real LIO through the daemon under test.
// Usage: node dist/test/e2e/tools/check-validate-lio.js RESULTS.jsonl  (exit 0 = all passed)
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Checker, type ResultLine, runChecks } from './results.js';

interface StepRecord {
  id: string;
  verdict: string;
  observed: string;
  explanation: { cause: string; fix: string } | null;
}
interface Report {
  outcome: string;
  message: string | null;
  keys: Record<string, string> | null;
  preflight: StepRecord[];
  flows: { id: string; steps: StepRecord[] }[];
  cleanup: StepRecord[];
}

const allSteps = (r: Report): StepRecord[] => [...r.preflight, ...r.flows.flatMap((f) => f.steps), ...r.cleanup];
const count = (r: Report, verdict: string): number => allSteps(r).filter((s) => s.verdict === verdict).length;

/**
 * Where pr-helper sg_persist may differ from Debian's, by the short spelling of the
 * step; README "Before you build the cluster" lists the same with the reasons.
 * `ours` gets Debian's stdout and must return exactly what pr-helper prints instead.
 */
const JUSTIFIED: Record<string, { why: string; ours: (debian: string) => string }> = {
  // No INQUIRY is sent: the helper forwards PR commands only.
  '-k B': { why: 'no INQUIRY through the helper: the identification lines are missing', ours: (d) => d.split('\n').filter((l) => /PR generation|^\s+0x/.test(l)).join('\n') + '\n' },
};

function main(c: Checker, results: ResultLine[], path: string): void {
  const out = dirname(path);
  const report = (name: string): Report | null => {
    try {
      return JSON.parse(readFileSync(join(out, `validate-${name}.json`), 'utf8')) as Report;
    } catch (err) {
      c.check(`validate-${name}.json is a report`, false, (err as Error).message);
      return null;
    }
  };

  const lio = c.line('lio-setup');
  c.check('lio-setup: three distinct disks of one LUN', new Set([lio.disk_a, lio.disk_b, lio.disk_c]).size === 3, lio);

  // 1. Passing runs leave the LUN as they found it.
  for (const name of ['wsfc', 'fence_scsi-one', 'all-one']) {
    const line = c.line(`validate-${name}`);
    const r = report(name);
    c.equal(`validate ${name}: exit status`, line.rc, 0);
    if (r) {
      c.equal(`validate ${name}: outcome`, r.outcome, 'pass');
      c.equal(`validate ${name}: failed steps`, allSteps(r).filter((s) => s.verdict === 'fail').map((s) => s.id), []);
      console.log(`     validate ${name}: ${count(r, 'pass')} passed, ${count(r, 'warn')} warnings, ${count(r, 'skip')} skipped`);
    }
    c.equal(`validate ${name}: READ KEYS after`, line.keys_after, '');
    c.equal(`validate ${name}: READ RESERVATION after`, line.reservation_after, '');
  }

  // 2. LIO without <db_root>/pr.
  const noPr = c.line('validate-no-pr-dir');
  c.equal('no pr/ dir: exit status', noPr.rc, 1);
  const np = report('no-pr-dir');
  if (np) {
    const first = allSteps(np).find((s) => s.verdict === 'fail');
    c.equal('no pr/ dir: first failing step', first?.id, 'capabilities.register');
    c.equal('no pr/ dir: observed', first?.observed, 'CHECK CONDITION, NOT READY 08/00 (logical unit communication failure)');
    c.check('no pr/ dir: the cause names LIO\'s APTPL state', /^LIO cannot write its APTPL state/.test(first?.explanation?.cause ?? ''), first?.explanation);
    c.check('no pr/ dir: the fix names the pr/ directory under db_root', /pr\/ directory under LIO's db_root/.test(first?.explanation?.fix ?? ''), first?.explanation);
  }
  c.equal('no pr/ dir: READ KEYS after', noPr.keys_after, '');
  c.equal('dbroot', c.line('dbroot').path, '/etc/target');

  // 3. SIGKILL: no cleanup can run; what it left, and what removes it.
  const killed = c.line('validate-killed');
  c.equal('killed run: still running when killed', killed.alive_at_kill, 1);
  c.equal('killed run: exit status (SIGKILL)', killed.rc, 137);
  const left = String(killed.keys_after ?? '');
  c.check('killed run: READ KEYS after shows what it left', left !== '', killed);
  console.log(`     killed run left keys [${left}], reservation [${String(killed.reservation_after ?? '')}]`);
  const again = c.line('validate-after-kill');
  c.equal('next run without --force: exit status (refused)', again.rc, 2);
  const ar = report('after-kill');
  if (ar) {
    c.equal('next run without --force: outcome', ar.outcome, 'refused');
    for (const key of left.split(' ').filter(Boolean)) c.check(`next run names the leftover key ${key}`, (ar.message ?? '').includes(key), ar.message);
  }
  const forced = c.line('validate-after-kill-force');
  c.equal('--force run: exit status', forced.rc, 0);
  c.equal('--force run: READ KEYS after', forced.keys_after, '');
  c.equal('--force run: READ RESERVATION after', forced.reservation_after, '');

  // 4. pr-helper sg_persist vs Debian's sg_persist.
  const cases = results.filter((r) => r.step === 'sgp-case');
  const file = (r: ResultLine, ext: string): string => readFileSync(join(out, 'sgp', String(r.run), `${String(r.n)}.${ext}`), 'utf8');
  const find = (run: string, n: unknown): ResultLine | undefined => cases.find((r) => r.run === run && r.n === n);
  const shortArgs = (n: unknown): string => String(find('short-debian', n)?.args ?? '');
  const steps = cases.filter((r) => r.run === 'short-debian').map((r) => r.n);
  c.check('sg_persist: every step ran in all four runs', steps.length > 0 && steps.every((n) => ['short-ours', 'long-debian', 'long-ours'].every((run) => find(run, n))), steps.length);
  let identical = 0;
  let justified = 0;
  for (const n of steps) {
    const args = shortArgs(n);
    for (const spelling of ['short', 'long']) {
      const debian = find(`${spelling}-debian`, n);
      const ours = find(`${spelling}-ours`, n);
      if (!debian || !ours) continue;
      const label = `sg_persist ${String(debian.args)}`;
      c.equal(`${label}: exit status`, ours.rc, debian.rc);
      const theirs = file(debian, 'out');
      const mine = file(ours, 'out');
      const allowed = JUSTIFIED[args];
      if (mine === theirs) identical++;
      else if (allowed) justified++;
      c.check(`${label}: stdout ${mine === theirs ? 'byte for byte' : allowed ? `as justified (${allowed.why})` : 'byte for byte'}`,
        mine === theirs || (allowed !== undefined && mine === allowed.ours(theirs)), { ours: mine, debian: theirs });
      if (file(debian, 'err') !== file(ours, 'err')) console.log(`     stderr differs for ${label}:\n       debian: ${JSON.stringify(file(debian, 'err'))}\n       ours:   ${JSON.stringify(file(ours, 'err'))}`);
    }
    for (const tool of ['debian', 'ours']) {
      const s = find(`short-${tool}`, n);
      const l = find(`long-${tool}`, n);
      if (s && l) c.check(`${tool} ${args}: both spellings give the same stdout and exit status`, s.rc === l.rc && file(s, 'out') === file(l, 'out'), { short: s.rc, long: l.rc });
    }
  }
  console.log(`     sg_persist: ${steps.length} steps x 2 spellings: ${identical} identical, ${justified} justified differences`);
  const absent = cases.find((r) => r.run === 'socket');
  c.equal('pr-helper sg_persist with no socket: exit status (50 + ENOENT)', absent?.rc, 52);
  if (absent) console.log(`     no socket: ${JSON.stringify(file(absent, 'err'))}`);
}

runChecks('check-validate-lio.js', main);
