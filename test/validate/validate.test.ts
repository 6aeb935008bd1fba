import { describe, expect, it } from 'vitest';
import { PrEngine } from '../../src/sim/pr-engine.js';
import { chooseKeys, flowsFor } from '../../src/validate/plan.js';
import { runValidation, type Executor, type ValidationReport } from '../../src/validate/run.js';
import type { NodeName, Reply } from '../../src/validate/steps.js';
import { basicParams, DATA, hex, IN, prInCdb, prOutCdb, SA } from '../fixtures/scsi-bytes.js';
import { iscsi, NODE_A, NODE_B, nexus } from '../sim/helpers.js';

/*
 * The validation plan run against the simulator's engine in process: every
 * node is an I_T nexus of one engine, so the verdicts come from the real
 * state machine, not from canned replies.
 */

/** A sequence of keys for the random source; then counting up. */
function randomFrom(...keys: bigint[]): () => bigint {
  let next = 0x1000n;
  return () => keys.shift() ?? next++;
}

function engineExecutor(engine: PrEngine, nexuses: Record<NodeName, ReturnType<typeof nexus>>, log: string[] = []): Executor {
  return async (node, cdb, params) => {
    log.push(`${node} ${cdb.subarray(0, 3).toString('hex')}`);
    const r = engine.execute(nexuses[node], cdb, params);
    const sense = Buffer.alloc(96);
    r.sense?.copy(sense);
    return { status: r.status, sense, data: r.data } satisfies Reply;
  };
}

const twoNexuses = { A: nexus(iscsi(NODE_A), 1), B: nexus(iscsi(NODE_B), 2) };
const engine2 = (): PrEngine => new PrEngine({ targetPorts: [1, 2] });

function readKeys(engine: PrEngine): string {
  return engine.execute(twoNexuses.A, prInCdb(IN.READ_KEYS), Buffer.alloc(0)).data.toString('hex');
}

const verdicts = (r: ValidationReport): string[] =>
  [...r.preflight, ...r.flows.flatMap((f) => f.steps), ...r.cleanup].filter((s) => s.verdict !== 'pass').map((s) => `${s.id}: ${s.verdict} ${s.observed}`);

describe('chooseKeys', () => {
  it('skips zero, keys already registered and the other node\'s key (KB2488012)', () => {
    expect(chooseKeys([0xaan], randomFrom(0n, 0xaan, 0x11n, 0x11n, 0xaan, 0x22n))).toEqual({ A: 0x11n, B: 0x22n });
  });

  it('gives up on a random source that never yields a usable key', () => {
    expect(() => chooseKeys([5n], () => 5n)).toThrow(/unusable keys/);
  });
});

describe('flowsFor', () => {
  it('runs the capability and nexus checks first, then the profile\'s flows', () => {
    expect(flowsFor('wsfc').map((f) => f.id)).toEqual(['capabilities', 'nexus', 'wsfc']);
    expect(flowsFor('fence_scsi').map((f) => f.id)).toEqual(['capabilities', 'nexus', 'fence_scsi']);
    expect(flowsFor('all').map((f) => f.id)).toEqual(['capabilities', 'nexus', 'wsfc', 'fence_scsi', 'types']);
  });
});

describe('runValidation against the SPC-4 engine', () => {
  it('passes every step with two nexuses and leaves no key behind', async () => {
    const engine = engine2();
    const report = await runValidation(engineExecutor(engine, twoNexuses), { profile: 'all', twoNodes: true, force: false, random: randomFrom(0xa1n, 0xb2n) });
    expect(verdicts(report).filter((v) => !v.includes(': info'))).toEqual([]);
    expect(report.outcome).toBe('pass');
    expect(report.keys).toEqual({ A: 0xa1n, B: 0xb2n });
    // Six types, each with its holder check from node 2.
    expect(report.flows.find((f) => f.id === 'types')!.steps.filter((s) => s.id.endsWith('.reserve-b'))).toHaveLength(6);
    expect(readKeys(engine).slice(8, 16)).toBe('00000000');
  });

  it('passes the single-node subset with one device and says what needs a second', async () => {
    const engine = engine2();
    const report = await runValidation(engineExecutor(engine, twoNexuses), { profile: 'all', twoNodes: false, force: false, random: randomFrom() });
    expect(report.outcome).toBe('pass');
    expect(report.flows.find((f) => f.id === 'nexus')!.skipped).toMatch(/--device twice/);
    expect(report.flows.flatMap((f) => f.notes).filter((n) => n.startsWith('Needs a second device'))).toHaveLength(3);
    expect(report.flows.flatMap((f) => f.steps).every((s) => s.node === 'A')).toBe(true);
    expect(readKeys(engine).slice(8, 16)).toBe('00000000');
  });

  it('refuses a LUN with foreign registrations and sends no PR OUT', async () => {
    const engine = engine2();
    const foreigner = nexus(iscsi('iqn.2008-11.org.linux-kvm:someone-else'), 1);
    const list = basicParams({ saKey: 0xf00dn });
    engine.execute(foreigner, prOutCdb(SA.REGISTER, 0, list.length), list);
    const log: string[] = [];
    const report = await runValidation(engineExecutor(engine, twoNexuses, log), { profile: 'all', twoNodes: true, force: false, random: randomFrom() });
    expect(report.outcome).toBe('refused');
    expect(report.message).toMatch(/0xf00d.*--force/);
    expect(log.every((l) => l.includes(' 5e'))).toBe(true);
  });

  it('with --force runs around the foreign registration, never CLEARs, and leaves it in place', async () => {
    const engine = engine2();
    const foreigner = nexus(iscsi('iqn.2008-11.org.linux-kvm:someone-else'), 1);
    const list = basicParams({ saKey: 0xf00dn });
    engine.execute(foreigner, prOutCdb(SA.REGISTER, 0, list.length), list);
    const log: string[] = [];
    const report = await runValidation(engineExecutor(engine, twoNexuses, log), { profile: 'all', twoNodes: true, force: true, random: randomFrom(0xf00dn, 0xa1n, 0xb2n) });
    expect(report.keys).toEqual({ A: 0xa1n, B: 0xb2n });
    expect(report.outcome).toBe('pass');
    expect(log.some((l) => l.endsWith('5f03'))).toBe(false);
    expect(readKeys(engine)).toBe(`${readKeys(engine).slice(0, 8)}00000008000000000000f00d`);
  });

  it('diagnoses two devices that are one I_T nexus', async () => {
    const engine = engine2();
    const report = await runValidation(engineExecutor(engine, { A: twoNexuses.A, B: twoNexuses.A }), { profile: 'wsfc', twoNodes: true, force: false, random: randomFrom(0xa1n, 0xb2n) });
    expect(report.outcome).toBe('fail');
    const nexusFlow = report.flows.find((f) => f.id === 'nexus')!;
    const failure = nexusFlow.steps.find((s) => s.verdict === 'fail')!;
    expect(failure.id).toBe('nexus.both-keys');
    expect(failure.explanation?.cause).toMatch(/same I_T nexus/);
    expect(nexusFlow.steps.slice(nexusFlow.steps.indexOf(failure) + 1).every((s) => s.verdict === 'skip')).toBe(true);
    expect(readKeys(engine).slice(8, 16)).toBe('00000000');
  });

  it('diagnoses two devices that are different LUNs', async () => {
    const [one, other] = [engine2(), engine2()];
    const a = engineExecutor(one, twoNexuses);
    const b = engineExecutor(other, twoNexuses);
    const report = await runValidation((node, cdb, params) => (node === 'A' ? a : b)(node, cdb, params), {
      profile: 'fence_scsi',
      twoNodes: true,
      force: false,
      random: randomFrom(),
    });
    const failure = report.flows.flatMap((f) => f.steps).find((s) => s.verdict === 'fail')!;
    expect(failure.id).toBe('nexus.seen-from-b');
    expect(failure.explanation?.cause).toMatch(/different LUNs/);
  });

  it('stops at an interruption, skips the rest and still unregisters', async () => {
    const engine = engine2();
    let commands = 0;
    const executor = engineExecutor(engine, twoNexuses);
    const report = await runValidation(
      (node, cdb, params) => {
        commands++;
        return executor(node, cdb, params);
      },
      { profile: 'wsfc', twoNodes: true, force: false, random: randomFrom(), interrupted: () => commands >= 14 },
    );
    expect(report.outcome).toBe('interrupted');
    expect(report.flows.flatMap((f) => f.steps).some((s) => s.observed === 'not run: interrupted')).toBe(true);
    expect(report.cleanup.map((s) => [s.id, s.verdict])).toEqual([
      ['cleanup.unregister-a', 'pass'],
      ['cleanup.unregister-b', 'pass'],
      ['cleanup.verify', 'pass'],
    ]);
    expect(readKeys(engine).slice(8, 16)).toBe('00000000');
  });
});

describe('explanations for known target failures', () => {
  /** A target that answers every PR OUT like `reply` and otherwise like the engine. */
  function failingOut(reply: Reply): Executor {
    const executor = engineExecutor(engine2(), twoNexuses);
    return async (node, cdb, params) => (cdb[0] === 0x5f ? reply : executor(node, cdb, params));
  }
  const sense = (bytes: string): Buffer => Buffer.concat([hex(bytes), Buffer.alloc(96 - hex(bytes).length)]);

  it('NOT READY 02/08/00 on REGISTER: LIO without its pr/ directory', async () => {
    const report = await runValidation(failingOut({ status: 2, sense: sense('70 00 02 000000000a 00000000 08 00'), data: Buffer.alloc(0) }), {
      profile: 'wsfc',
      twoNodes: false,
      force: false,
      random: randomFrom(),
    });
    const failure = report.flows.flatMap((f) => f.steps).find((s) => s.verdict === 'fail')!;
    expect(failure.id).toBe('capabilities.register');
    expect(failure.observed).toBe('CHECK CONDITION, NOT READY 08/00 (logical unit communication failure)');
    expect(failure.explanation?.cause).toMatch(/LIO cannot write its APTPL state/);
    expect(failure.explanation?.fix).toMatch(/\/etc\/target\/pr/);
  });

  it('READ RESERVATION empty after RESERVE: the ESOS #62 class of bug', async () => {
    const engine = engine2();
    const executor = engineExecutor(engine, twoNexuses);
    const report = await runValidation(
      async (node, cdb, params) => (cdb[0] === 0x5e && cdb[1] === IN.READ_RESERVATION ? { status: 0, sense: Buffer.alloc(96), data: DATA.READ_RESERVATION_NONE } : executor(node, cdb, params)),
      { profile: 'wsfc', twoNodes: true, force: false, random: randomFrom() },
    );
    const failure = report.flows.flatMap((f) => f.steps).find((s) => s.verdict === 'fail')!;
    expect(failure.id).toBe('wsfc.is-pr-present-a');
    expect(failure.explanation?.cause).toMatch(/fail to report existing PR/);
    expect(report.cleanup.at(-1)!.verdict).toBe('pass');
  });

  it('a broken link ends the run with its message', async () => {
    const report = await runValidation(async () => Promise.reject(new Error('Unexpected end-of-file')), {
      profile: 'wsfc',
      twoNodes: false,
      force: false,
      random: randomFrom(),
    });
    expect(report.outcome).toBe('fail');
    expect(report.message).toMatch(/READ KEYS: Unexpected end-of-file/);
  });
});
