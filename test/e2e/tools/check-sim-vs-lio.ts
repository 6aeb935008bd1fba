// Tier 1b verdict: compares our simulated disk's replies with LIO's for the Tier 1
// sequence; passes only if every difference is a pinned LIO quirk (lio-divergences.ts)
// and every pinned quirk still shows up.
// Usage: node dist/test/e2e/tools/check-sim-vs-lio.js LIO.json SIMULATED.json
import { readFileSync } from 'node:fs';
import { divergences, judge } from './lio-divergences.js';
import { prSequence, type Recording } from './pr-sequence.js';

const [lioPath, simPath] = process.argv.slice(2);
if (lioPath === undefined || simPath === undefined) {
  console.error('usage: check-sim-vs-lio.js LIO.json SIMULATED.json');
  process.exit(2);
}
const lio = JSON.parse(readFileSync(lioPath, 'utf8')) as Recording;
const sim = JSON.parse(readFileSync(simPath, 'utf8')) as Recording;
const names = prSequence().map((s) => s.name);
let ok = true;
for (const [label, rec] of [['LIO', lio], ['simulated', sim]] as const) {
  const got = rec.replies.map((r) => r.name);
  if (JSON.stringify(got) !== JSON.stringify(names)) {
    console.log(`FAIL ${label} recording does not cover the current sequence (re-record it): ${got.join(',')}`);
    ok = false;
  }
}

const verdict = judge(divergences(lio, sim));
const identical = names.length - new Set([...verdict.allowed.map((q) => q.step), ...verdict.unexpected.map((d) => d.step)]).size;
console.log(`ok   ${identical}/${names.length} replies identical to LIO's`);
const show = (v: Partial<Record<string, string>>): string => Object.entries(v).map(([f, x]) => `${f} ${x || '-'}`).join(', ');
for (const q of verdict.allowed) console.log(`ok   pinned LIO quirk ${q.step}: LIO ${show(q.lio)} / sim ${show(q.sim)} -- ${q.reason}`);
for (const d of verdict.unexpected) {
  console.log(`FAIL ${d.step} ${d.field}: LIO ${d.lio || '-'} / sim ${d.sim || '-'} (not a pinned LIO quirk: fix src/sim/pr-engine.ts or pin it)`);
}
for (const q of verdict.vanished) console.log(`FAIL pinned quirk ${q.step} did not show up as pinned (LIO ${show(q.lio)} / sim ${show(q.sim)}) -- ${q.reason}`);
ok &&= verdict.unexpected.length === 0 && verdict.vanished.length === 0;
console.log(`${verdict.allowed.length} known quirks, ${verdict.unexpected.length} unexpected differences, ${verdict.vanished.length} vanished quirks`);
process.exit(ok ? 0 : 1);
