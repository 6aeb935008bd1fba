// Bounded protocol fuzzing (the long form is `npm run fuzz`): seeded random and
// mutated client traffic against our daemon in SG_IO mode under the fake SCSI
// target and in simulated mode, plus a differential slice against
// /usr/bin/qemu-pr-helper. The invariants and the model are in
// fuzz-harness.ts and frames.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QEMU_PR_HELPER, requireTool } from '../helpers/daemon.js';
import {
  newStats,
  runBatch,
  runDifferential,
  setUpFuzzEnvironment,
  warmUp,
  type Failure,
  type FuzzEnvironment,
} from './fuzz-harness.js';
import { checkReplies, generateCase, predict, type FuzzCase, type Segment } from './frames.js';
import { Prng } from './prng.js';

const haveReference = requireTool(QEMU_PR_HELPER, 'qemu-system-common');
const SEEDS = [0x5eed0001, 0x5eed0002];
/** Cases per seed and target: about 3000 frames per target in all. */
const CASES = 550;

let env: FuzzEnvironment;

function report(failures: readonly Failure[]): string {
  return failures
    .slice(0, 10)
    .map((f) => `[${f.target}] seed ${f.seed} case ${f.index}\n  ${f.problems.join('\n  ')}`)
    .join('\n');
}

describe('protocol fuzzing (bounded)', () => {
  beforeAll(async () => {
    env = await setUpFuzzEnvironment({ differential: haveReference });
    await warmUp(env, SEEDS[0]!);
  }, 60_000);

  afterAll(async () => {
    const exits = await env?.close();
    // Never dies, and still stops cleanly after all of it.
    expect(exits?.map((e) => e.exit)).toEqual(exits?.map(() => 0));
  });

  for (const [t, name] of ['SG_IO mode under the fake target', 'simulated mode'].entries()) {
    it(`${name}: replies match the model, nothing QEMU would abort on, no descriptor leaked, daemon alive`, async () => {
      const target = env.targets[t]!;
      const stats = newStats();
      for (const seed of SEEDS) await runBatch(target, { seed, firstIndex: 0, count: CASES, concurrency: 8 }, stats);
      expect(report(stats.failures)).toBe('');
      expect(stats.frames).toBeGreaterThan(2500);
      // The generator reaches every way of closing and enough executed requests.
      expect(Object.keys(stats.closes).sort()).toEqual(['cdb-eof', 'fd-count', 'handshake-eof', 'handshake-features', 'opcode', 'params-eof', 'too-long']);
      expect(stats.replies).toBeGreaterThan(600);
      if (t === 0) expect(stats.sgioCalls).toBeGreaterThan(100);
    }, 90_000);
  }

  it.skipIf(!haveReference)('differential: 300 cases close where qemu-pr-helper closes and reply with the same bytes', async () => {
    const stats = newStats();
    await runDifferential(env.differential!, { seed: 0xd1ff0001, firstIndex: 0, count: 300, concurrency: 1 }, stats);
    expect(report(stats.failures)).toBe('');
    expect(stats.differentialCases).toBe(300);
  }, 90_000);
});

// The oracle itself: hand-checked cases from pr-helper-protocol.md, so a
// broken model cannot make the fuzzing vacuous.
describe('fuzz model', () => {
  const seg = (hex: string, fds: string[] = []): Segment => ({ data: Buffer.from(hex.replace(/\s/g, ''), 'hex'), fds });
  const kase = (...segments: Segment[]): FuzzCase => ({ seed: 0, index: 0, segments, ending: 'half-close', frames: 1 });
  const READ_KEYS = '5e000000000000200000000000000000';

  it('follows descriptors to the read that consumes their first byte (spec 1.3)', () => {
    expect(predict(kase(seg('00000000'), seg('5e00000000'), seg('0000200000000000000000', ['f']))).requests).toHaveLength(1);
    // fd glued to the handshake is dropped: the CDB has none.
    expect(predict(kase(seg(`00000000${READ_KEYS}`, ['f']))).cause).toBe('fd-count');
    // PR OUT parameters + next CDB in one sendmsg: the fd goes with the parameters.
    const glued = predict(kase(seg('00000000'), seg('5f000000000000000400000000000000', ['f']), seg(`01020304${READ_KEYS}`, ['f'])));
    expect(glued.requests.map((r) => r.direction)).toEqual(['out']);
    expect(glued.cause).toBe('fd-count');
    // Two fds on two parts of one CDB.
    expect(predict(kase(seg('00000000'), seg('5e000000', ['f']), seg('000000200000000000000000', ['f']))).cause).toBe('fd-count');
  });

  it('applies the length rules of 1.4: bytes 7-8 only, 8192 accepted, 8193 dropped', () => {
    expect(predict(kase(seg('00000000'), seg('5f000000000001001800000000000000', ['f']), seg('00'.repeat(24)))).requests[0]!.length).toBe(24);
    expect(predict(kase(seg('00000000'), seg('5e000000000000200000000000000000', ['f']))).requests).toHaveLength(1);
    expect(predict(kase(seg('00000000'), seg('5e000000000000200100000000000000', ['f']))).cause).toBe('too-long');
    expect(predict(kase(seg('00000001'))).cause).toBe('handshake-features');
    expect(predict(kase(seg('0000'))).cause).toBe('handshake-eof');
    expect(predict(kase(seg('00000000'), seg('5d000000000000200000000000000000', ['f']))).cause).toBe('opcode');
  });

  it('flags replies QEMU would abort on', () => {
    const prediction = predict(kase(seg('00000000'), seg('5f000000000000000000000000000000', ['f']), seg('5e000000000000000800000000000000', ['f'])));
    const header = (status: number, size: number): Buffer => {
      const b = Buffer.alloc(104);
      b.writeInt32BE(status, 0);
      b.writeInt32BE(size, 4);
      return b;
    };
    const ok = Buffer.concat([Buffer.alloc(4), header(0, 0), header(0, 8), Buffer.alloc(8)]);
    expect(checkReplies(ok, prediction, () => null).problems).toEqual([]);
    const outWithData = Buffer.concat([Buffer.alloc(4), header(0, 4), Buffer.alloc(4), header(0, 0)]);
    expect(checkReplies(outWithData, prediction, () => null).problems.join()).toMatch(/PR OUT with size 4/);
    const inTooLong = Buffer.concat([Buffer.alloc(4), header(0, 0), header(0, 9), Buffer.alloc(9)]);
    expect(checkReplies(inTooLong, prediction, () => null).problems.join()).toMatch(/size 9 > allocation length 8/);
    const extra = Buffer.concat([ok, header(0, 0)]);
    expect(checkReplies(extra, prediction, () => null).problems.join()).toMatch(/after the last predicted reply/);
  });

  it('is reproducible from (seed, index) and covers the boundary lengths', () => {
    const a = generateCase(42, 17, { kinds: ['f'] });
    const b = generateCase(42, 17, { kinds: ['f'] });
    expect(a).toEqual(b);
    const lengths = new Set<number>();
    for (let i = 0; i < 3000; i++) for (const r of predict(generateCase(1, i, { kinds: ['f'] })).requests) lengths.add(r.length);
    for (const l of [0, 24, 8191, 8192]) expect(lengths.has(l)).toBe(true);
    const r = new Prng(1);
    expect(Array.from({ length: 4 }, () => r.u32())).toEqual(Array.from({ length: 4 }, ((q) => () => q.u32())(new Prng(1))));
  });
});
