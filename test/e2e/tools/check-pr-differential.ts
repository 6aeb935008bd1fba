// Host-side assertions on jobs/pr-differential.sh (Tier 1): the helper under test must
// give byte-identical replies (status, all 96 sense bytes, data) to the real
// qemu-pr-helper for the whole scripted sequence on a fresh LIO LUN. The reference run
// must also do what the sequence intends (conflicts, unit attentions), so that a broken
// rig cannot pass by both runs failing the same way.
// Usage: node dist/test/e2e/tools/check-pr-differential.js RESULTS.jsonl
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { LIO_FIXTURE } from './lio-divergences.js';
import { prSequence, type RecordedReply, type Recording } from './pr-sequence.js';
import { Checker, type ResultLine, runChecks, senseTriple } from './results.js';

function loadRecording(path: string): Recording | undefined {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Recording) : undefined;
}

/** Field-by-field differences of two replies; trailing zero sense bytes are shown trimmed. */
function replyDiff(a: RecordedReply, b: RecordedReply): string[] {
  const out: string[] = [];
  if (a.status !== b.status) out.push(`status 0x${a.status.toString(16)} vs 0x${b.status.toString(16)}`);
  if (a.sense !== b.sense) out.push(`sense ${trimSense(a.sense)} vs ${trimSense(b.sense)}`);
  if (a.data !== b.data) out.push(`data ${a.data || '-'} vs ${b.data || '-'}`);
  return out;
}

/** SPC-4's names of the PR OUT service actions, as the audit trail must print them. */
const SERVICE_ACTIONS = ['REGISTER', 'RESERVE', 'RELEASE', 'CLEAR', 'PREEMPT', 'PREEMPT AND ABORT', 'REGISTER AND IGNORE EXISTING KEY', 'REGISTER AND MOVE', 'REPLACE LOST RESERVATION'];

interface LogLine {
  msg: string;
  level: number;
  conn?: number;
  action?: string;
  key?: string;
  saKey?: string;
  dev?: string;
}

/** The candidate's log lines: helper-ctl.sh appends every run to one helper.log, each after a "== ... start:" line. */
function candidateLog(path: string): LogLine[] {
  if (!existsSync(path)) return [];
  const runs = readFileSync(path, 'utf8').split(/^== .* start: .*$/m);
  return runs[runs.length - 1]!
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

const keyText = (hex: string): string => `0x${BigInt(`0x${hex}`).toString(16)}`;

/**
 * The audit trail on real LIO (issue: operators can see every reservation):
 * every PR OUT of the sequence has its line, in order, naming the nexus's
 * device, the action and both keys, and the two nodes' connections apart.
 */
function checkAuditTrail(c: Checker, rec: Recording | undefined, log: LogLine[]): void {
  const audit = log.filter((l) => l.msg.startsWith('PR OUT '));
  const outs = (rec?.replies ?? []).filter((r) => r.cdb.startsWith('5f'));
  c.equal('candidate log: one audit line per PR OUT of the sequence', audit.length, outs.length);
  const connOf: Partial<Record<string, number>> = {};
  for (const [i, r] of outs.entries()) {
    const line = audit[i];
    const action = SERVICE_ACTIONS[Number.parseInt(r.cdb.slice(2, 4), 16) & 0x1f];
    const expected = { action, key: keyText(r.params.slice(0, 16)), saKey: keyText(r.params.slice(16, 32)), dev: basename(rec!.disks[r.node]) };
    const got = { action: line?.action, key: line?.key, saKey: line?.saKey, dev: line?.dev };
    c.equal(`audit ${r.node} ${r.name}`, got, expected);
    if (line?.conn !== undefined) connOf[r.node] ??= line.conn;
  }
  c.check('audit: node A and node B are told apart by their connections', connOf['A'] !== undefined && connOf['A'] !== connOf['B'], connOf);
}

function trimSense(hex: string): string {
  return hex.replace(/(00)+$/, '') || '-';
}

function main(c: Checker, _results: ResultLine[], path: string): void {
  const dir = dirname(path);
  const steps = prSequence();
  const runs: Record<string, Recording | undefined> = {};
  for (const label of ['reference', 'candidate']) {
    const lio = c.line(`lio-setup-${label}`);
    c.equal(`${label}: initiators A, B`, [lio.init_a, lio.init_b], ['naa.50014050000000a1', 'naa.50014050000000a2']);
    const fresh = c.line(`fresh-lun-${label}`);
    c.equal(`${label}: the LUN starts fresh (READ KEYS: generation, keys)`, [fresh.generation, fresh.keys], ['0x0', '']);
    c.equal(`${label}: helper started`, c.line(`helper-start-${label}`).ok, 1);
    c.equal(`${label}: pr-sequence exit status`, c.line(`sequence-${label}`).rc, 0);
    const rec = loadRecording(join(dir, `seq-${label}.json`));
    c.check(`${label}: recording seq-${label}.json present`, rec !== undefined);
    c.equal(`${label}: one reply per step`, rec?.replies.map((r) => r.name), steps.map((s) => s.name));
    runs[label] = rec;
  }
  const versions = c.line('versions');
  console.log(`     reference helper: ${String(versions.reference)}; kernel ${String(versions.kernel)}`);

  // What LIO must have done through the reference helper.
  const ref = runs.reference?.replies ?? [];
  for (const step of steps) {
    if (!step.expect) continue;
    const r = ref.find((x) => x.name === step.name);
    c.equal(`reference ${step.name}: status`, r?.status, step.expect.status);
    if (step.expect.sense) c.equal(`reference ${step.name}: sense key/ASC/ASCQ`, senseTriple(r?.sense ?? ''), step.expect.sense);
  }

  // The differential itself: nothing normalised.
  const cand = runs.candidate?.replies ?? [];
  for (const [i, step] of steps.entries()) {
    const a = ref[i];
    const b = cand[i];
    const diff = a && b ? replyDiff(a, b) : ['missing reply'];
    c.check(`${step.node} ${step.name}: candidate reply identical to qemu-pr-helper's`, diff.length === 0, diff.join('; '));
  }

  checkAuditTrail(c, runs.candidate, candidateLog(join(dir, 'helper.log')));

  // Informational: has LIO itself changed since the fixture Tier 1b defaults to was captured?
  const fixture = loadRecording(LIO_FIXTURE);
  if (fixture && runs.reference) {
    const changed = steps.filter((s, i) => {
      const f = fixture.replies[i];
      const r = runs.reference!.replies[i];
      return !f || !r || f.name !== s.name || replyDiff(f, r).length > 0;
    });
    console.log(
      changed.length === 0
        ? `note LIO replies identical to ${LIO_FIXTURE}`
        : `note LIO replies differ from ${LIO_FIXTURE} in: ${changed.map((s) => s.name).join(', ')}`,
    );
  }
}

runChecks('check-pr-differential.js', main);
