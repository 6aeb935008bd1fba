import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { divergences, judge, LIO_FIXTURE, LIO_QUIRKS, type Divergence } from './tools/lio-divergences.js';
import { prSequence, runSequence, type Recording } from './tools/pr-sequence.js';
import { writeSimConfig } from '../helpers/sim-config.js';

/*
 * Tier 1b without a VM: the Tier 1 sequence on our daemon's simulated disk, compared
 * with LIO's replies as kept in test/e2e/fixtures/lio-pr-sequence.json (recorded through
 * qemu-pr-helper by run-differential.sh). run-all.sh does the same against a fresh
 * recording. Differences are allowed only as pinned in tools/lio-divergences.ts for
 * the default profile; the simulator's "lio" profile must match the recording exactly.
 */
const lio = JSON.parse(readFileSync(LIO_FIXTURE, 'utf8')) as Recording;

/** Our daemon on a two-nexus simulated disk shaped like the LIO rig, running the Tier 1 sequence under `profile`. */
async function simulate(profile: 'spc4' | 'lio'): Promise<{ sim: Recording; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), `sim-vs-lio-${profile}-`));
  const disks = { A: join(dir, 'a.img'), B: join(dir, 'b.img') };
  writeFileSync(disks.A, '');
  writeFileSync(disks.B, '');
  // LIO writes its APTPL file into an existing directory (the rig creates /etc/target/pr).
  mkdirSync(join(dir, 'state'));
  // LIO's nexuses as READ FULL STATUS shows them: SAS initiator ports …a1/…a2 on
  // relative target ports 1 and 2.
  const config = writeSimConfig(dir, [{
    name: 'disk0',
    paths: [
      { path: disks.A, initiator: 'naa.50014050000000a1', targetPort: 1 },
      { path: disks.B, initiator: 'naa.50014050000000a2', targetPort: 2 },
    ],
  }], { profile });
  const daemon: RunningDaemon = await startDaemon(join(dir, 'prh.sock'), ['--simulate', config]);
  try {
    return {
      sim: await runSequence(daemon.socket, disks, `simulated-${profile}`),
      stop: async () => {
        await daemon.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await daemon.stop();
    throw err;
  }
}

describe('simulated disk vs LIO (tier 1b, recorded LIO replies)', () => {
  let spc4: Awaited<ReturnType<typeof simulate>>;
  let lioProfile: Awaited<ReturnType<typeof simulate>>;

  beforeAll(async () => {
    spc4 = await simulate('spc4');
    lioProfile = await simulate('lio');
  });

  afterAll(async () => {
    await spc4?.stop();
    await lioProfile?.stop();
  });

  it('the LIO recording covers the current sequence (re-record it with run-differential.sh otherwise)', () => {
    expect(lio.replies.map((r) => r.name)).toEqual(prSequence().map((s) => s.name));
  });

  it('the default (spc4) profile differs from LIO exactly where LIO has a documented quirk (spc4-pr-semantics.md §8)', () => {
    const verdict = judge(divergences(lio, spc4.sim));
    expect(verdict.unexpected).toEqual([]);
    expect(verdict.vanished).toEqual([]);
    expect(verdict.allowed.map((q) => q.step)).toEqual(LIO_QUIRKS.map((q) => q.step));
  });

  it('the lio profile reproduces every pinned quirk: no divergence from the recording is left', () => {
    expect(divergences(lio, lioProfile.sim)).toEqual([]);
  });

  it('every pinned quirk is a quirk probe, outside the two-node scenario, except REPORT CAPABILITIES', () => {
    const probes = new Set(prSequence().filter((s) => s.quirkProbe).map((s) => s.name));
    expect(LIO_QUIRKS.filter((q) => !probes.has(q.step)).map((q) => q.step)).toEqual(['a-report-capabilities']);
    for (const q of LIO_QUIRKS) expect(q.reason).toMatch(/^§8 /);
  });
});

describe('judge(): the allow-list is exact', () => {
  const quirk = LIO_QUIRKS.find((q) => q.step === 'q-a-release-wrong-type')!;
  const asPinned: Divergence[] = [
    { step: quirk.step, field: 'status', lio: quirk.lio.status!, sim: quirk.sim.status! },
    { step: quirk.step, field: 'sense', lio: quirk.lio.sense!, sim: quirk.sim.sense! },
  ];

  it('accepts a pinned difference with its pinned values', () => {
    expect(judge(asPinned, [quirk])).toEqual({ allowed: [quirk], unexpected: [], vanished: [] });
  });

  it('rejects a difference that is not on the list', () => {
    const other: Divergence = { step: 'a-read-keys', field: 'data', lio: '00', sim: '01' };
    expect(judge([...asPinned, other], [quirk]).unexpected).toEqual([other]);
  });

  it('rejects a pinned step that differs in other values or fields than pinned', () => {
    const changed = [{ ...asPinned[0]!, sim: '0x00' }, asPinned[1]!];
    expect(judge(changed, [quirk])).toEqual({ allowed: [], unexpected: changed, vanished: [quirk] });
    expect(judge(asPinned.slice(0, 1), [quirk]).vanished).toEqual([quirk]);
  });

  it('reports a pinned quirk that disappeared', () => {
    expect(judge([], [quirk])).toEqual({ allowed: [], unexpected: [], vanished: [quirk] });
  });
});
