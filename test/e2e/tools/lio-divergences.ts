// Tier 1b: where our simulated disk may answer the Tier 1 sequence differently from LIO.
// Only LIO's documented departures from SPC-4 (spc4-pr-semantics.md §8) are allowed, each
// pinned to the exact bytes on both sides. Any other difference is a simulator bug to fix
// in src/sim/pr-engine.ts; an allowed one that disappears means LIO (or the simulator)
// changed and this list must be revisited.
import { resolve } from 'node:path';
import { REPO_ROOT } from '../../helpers/repo-root.js';
import type { RecordedReply, Recording } from './pr-sequence.js';

/** LIO's replies to the sequence as recorded through qemu-pr-helper (run-differential.sh), kept in the tree. */
export const LIO_FIXTURE = resolve(REPO_ROOT, 'test/e2e/fixtures/lio-pr-sequence.json');

export type Field = 'status' | 'sense' | 'data';

export interface Divergence {
  step: string;
  field: Field;
  lio: string;
  sim: string;
}

/** One step's pinned difference: the fields that differ, with their exact values on each side. */
export interface KnownQuirk {
  step: string;
  lio: Partial<Record<Field, string>>;
  sim: Partial<Record<Field, string>>;
  /** Why the simulator deliberately differs, citing spc4-pr-semantics.md §8. */
  reason: string;
}

// Sense is compared without its trailing zero bytes; '' is "no sense" / "no data".
export const LIO_QUIRKS: readonly KnownQuirk[] = [
  {
    step: 'a-report-capabilities',
    lio: { data: '00081d90ea010000' },
    sim: { data: '00081dc0ea010000' },
    reason: '§8 REPORT CAPABILITIES: LIO reports ALLOW COMMANDS 001b; the simulator 100b, matching its conflict table (§5.4, §11)',
  },
  {
    step: 'q-b-reserve-unregistered',
    lio: { status: '0x02', sense: '700002000000000a0000000008' },
    sim: { status: '0x18', sense: '' },
    reason: '§8 "Unregistered RESERVE/RELEASE/CLEAR/R&M, no reservation": LIO answers NOT READY 02/08/00; spec RESERVATION CONFLICT (§3 step 6)',
  },
  {
    step: 'q-a-read-keys-alloc-4',
    lio: { status: '0x02', sense: '700005000000000a0000000024', data: '' },
    sim: { status: '0x00', sense: '', data: '0000000c' },
    reason: '§8 "PR IN alloc len < 8": LIO rejects it with 05/24/00; spec returns the truncated data with GOOD (§5.1)',
  },
  {
    step: 'q-a-reserve-scope-1',
    lio: { sense: '700005000000000a0000000026' },
    sim: { sense: '700005000000000a0000000024' },
    reason: '§8 "RESERVE scope != 0": LIO answers 05/26/00 although SCOPE is a CDB field; the simulator 05/24/00 like SCST/tgt (§4.2)',
  },
  {
    step: 'q-a-release-wrong-type',
    lio: { status: '0x18', sense: '' },
    sim: { status: '0x02', sense: '700005000000000a000000002604' },
    reason: '§8 "RELEASE type/scope mismatch": LIO answers RESERVATION CONFLICT; spec 05/26/04 INVALID RELEASE OF PERSISTENT RESERVATION (§4.3)',
  },
  {
    step: 'q-b-read-keys',
    lio: { data: '0000000d00000000' },
    sim: { data: '0000000e00000000' },
    reason: '§8 "PRgeneration on unregister": LIO does not bump it on the preceding unregister; spec +1 (§4.8)',
  },
];

/** The compared form of a reply field: status as 0xNN, sense without its trailing zero bytes. */
export function fieldValue(r: RecordedReply, field: Field): string {
  switch (field) {
    case 'status':
      return `0x${r.status.toString(16).padStart(2, '0')}`;
    case 'sense':
      return r.sense.replace(/(00)+$/, '');
    case 'data':
      return r.data;
  }
}

/** Every field in which the two recordings differ, step by step (matched by name). */
export function divergences(lio: Recording, sim: Recording): Divergence[] {
  const out: Divergence[] = [];
  const simByName = new Map(sim.replies.map((r) => [r.name, r]));
  for (const l of lio.replies) {
    const s = simByName.get(l.name);
    if (!s) {
      out.push({ step: l.name, field: 'status', lio: fieldValue(l, 'status'), sim: '(no reply)' });
      continue;
    }
    for (const field of ['status', 'sense', 'data'] as const) {
      const lv = fieldValue(l, field);
      const sv = fieldValue(s, field);
      if (lv !== sv) out.push({ step: l.name, field, lio: lv, sim: sv });
    }
  }
  for (const s of sim.replies) {
    if (!lio.replies.some((l) => l.name === s.name)) {
      out.push({ step: s.name, field: 'status', lio: '(no reply)', sim: fieldValue(s, 'status') });
    }
  }
  return out;
}

export interface Verdict {
  /** Pinned quirks that showed up with exactly the pinned values. */
  allowed: KnownQuirk[];
  /** Differences of steps that have no pinned quirk, or whose fields or values differ from the pin. */
  unexpected: Divergence[];
  /** Pinned quirks that did not show up as pinned. */
  vanished: KnownQuirk[];
}

export function judge(found: readonly Divergence[], quirks: readonly KnownQuirk[] = LIO_QUIRKS): Verdict {
  const verdict: Verdict = { allowed: [], unexpected: [], vanished: [] };
  const steps = new Set([...found.map((d) => d.step), ...quirks.map((q) => q.step)]);
  for (const step of steps) {
    const diffs = found.filter((d) => d.step === step);
    const quirk = quirks.find((q) => q.step === step);
    const asPinned =
      quirk !== undefined &&
      diffs.length === Object.keys(quirk.lio).length &&
      diffs.every((d) => quirk.lio[d.field] === d.lio && quirk.sim[d.field] === d.sim);
    if (asPinned) verdict.allowed.push(quirk);
    else {
      verdict.unexpected.push(...diffs);
      if (quirk) verdict.vanished.push(quirk);
    }
  }
  return verdict;
}
