/**
 * Runs a validation plan through an executor (the helper socket in the CLI,
 * an engine in tests) and always cleans up after itself: each flow starts
 * and ends with the run's keys unregistered, and an interrupted or failed run
 * still unregisters before it returns.
 */
import {
  chooseKeys,
  cleanupStep,
  flowsFor,
  keysOf,
  leftoverStep,
  preflightStep,
  type FlowContext,
  type Keys,
  type Observations,
  type Profile,
} from './plan.js';
import { describeCommand, encodeCommand, isUnitAttention, describeStatus, type NodeName, type Reply, type Step, type Verdict } from './steps.js';
import type { Explanation } from './explain.js';

/** Sends one command from one node; rejects when the link to the helper broke. */
export type Executor = (node: NodeName, cdb: Buffer, params: Buffer) => Promise<Reply>;

export interface StepRecord {
  readonly flow: string;
  readonly id: string;
  readonly node: NodeName;
  readonly title: string;
  /** The command as sent, e.g. "PR OUT RESERVE WE-RO key 0x…". */
  readonly command: string;
  readonly expected: string;
  readonly observed: string;
  readonly verdict: Verdict;
  readonly explanation: Explanation | null;
  /** A unit attention this step met and retried past. */
  readonly retriedPast: string | null;
}

export interface FlowRecord {
  readonly id: string;
  readonly title: string;
  readonly notes: string[];
  /** Why the flow did not run; null when it did. */
  readonly skipped: string | null;
  readonly steps: StepRecord[];
}

export type Outcome = 'pass' | 'fail' | 'refused' | 'interrupted';

export interface ValidationReport {
  readonly profile: Profile;
  readonly nodes: NodeName[];
  readonly keys: Keys | null;
  /** Keys registered before the run started. */
  readonly foreignKeys: bigint[];
  readonly preflight: StepRecord[];
  readonly flows: FlowRecord[];
  readonly cleanup: StepRecord[];
  readonly outcome: Outcome;
  /** One line for refused and interrupted runs. */
  readonly message: string | null;
}

export interface RunOptions {
  readonly profile: Profile;
  readonly twoNodes: boolean;
  /** Run despite registrations of others. */
  readonly force: boolean;
  readonly random: () => bigint;
  /** Checked before every command; when set the run cleans up and stops. */
  readonly interrupted?: () => boolean;
  /** Called after each recorded step, for progress output. */
  readonly onStep?: (record: StepRecord) => void;
}

class LinkBroken extends Error {}

async function send(execute: Executor, step: Step): Promise<Reply> {
  const { cdb, params } = encodeCommand(step.command);
  try {
    return await execute(step.node, cdb, params);
  } catch (err) {
    throw new LinkBroken(`${describeCommand(step.command)}: ${(err as Error).message}`);
  }
}

/** One step, retried once past a unit attention unless the step looks for one. */
async function runStep(execute: Executor, flow: string, step: Step): Promise<StepRecord & { reply: Reply }> {
  let reply = await send(execute, step);
  let retriedPast: string | null = null;
  if (!step.expectsUnitAttention && isUnitAttention(reply)) {
    retriedPast = describeStatus(reply);
    reply = await send(execute, step);
  }
  const judged = step.judge(reply);
  return {
    ...recordOf(flow, step),
    observed: judged.observed,
    verdict: judged.verdict,
    explanation: judged.explanation,
    retriedPast,
    reply,
  };
}

/** The record without the reply it was judged on. */
function withoutReply({ reply: _reply, ...record }: StepRecord & { reply: Reply }): StepRecord {
  return record;
}

/** What a record says about its step before the step runs. */
function recordOf(flow: string, step: Step): Pick<StepRecord, 'flow' | 'id' | 'node' | 'title' | 'command' | 'expected'> {
  return { flow, id: step.id, node: step.node, title: step.title, command: describeCommand(step.command), expected: step.expected };
}

function skippedRecord(flow: string, step: Step, why: string): StepRecord {
  return {
    ...recordOf(flow, step),
    observed: why,
    verdict: 'skip',
    explanation: null,
    retriedPast: null,
  };
}

/** Whether every recorded step passed (warnings, notes and skips do not fail a run). */
export function failed(records: readonly StepRecord[]): boolean {
  return records.some((r) => r.verdict === 'fail');
}

export async function runValidation(execute: Executor, options: RunOptions): Promise<ValidationReport> {
  const nodes: NodeName[] = options.twoNodes ? ['A', 'B'] : ['A'];
  const interrupted = options.interrupted ?? (() => false);
  const record = (r: StepRecord): StepRecord => {
    options.onStep?.(r);
    return r;
  };
  const report = {
    profile: options.profile,
    nodes,
    keys: null as Keys | null,
    foreignKeys: [] as bigint[],
    preflight: [] as StepRecord[],
    flows: [] as FlowRecord[],
    cleanup: [] as StepRecord[],
    outcome: 'pass' as Outcome,
    message: null as string | null,
  };

  try {
    for (const node of nodes) {
      const done = await runStep(execute, 'preflight', preflightStep(node));
      report.preflight.push(record(withoutReply(done)));
      for (const key of keysOf(done.reply)) if (!report.foreignKeys.includes(key)) report.foreignKeys.push(key);
    }
  } catch (err) {
    if (!(err instanceof LinkBroken)) throw err;
    return { ...report, outcome: 'fail', message: err.message };
  }
  if (failed(report.preflight)) return { ...report, outcome: 'fail', message: 'cannot read the registrations; nothing was changed' };
  if (report.foreignKeys.length > 0 && !options.force) {
    const listed = report.foreignKeys.map((k) => `0x${k.toString(16)}`).join(', ');
    return { ...report, outcome: 'refused', message: `the LUN has registrations that are not this run's (${listed}); refusing to touch it without --force` };
  }

  const keys = chooseKeys(report.foreignKeys, options.random);
  report.keys = keys;
  const observations: Observations = { supportedTypes: null };
  const context: FlowContext = { keys, twoNodes: options.twoNodes, foreign: report.foreignKeys.length > 0, observations };

  const cleanUp = async (flow: string, all: boolean): Promise<StepRecord[]> => {
    const records: StepRecord[] = [];
    for (const node of nodes) records.push(withoutReply(await runStep(execute, flow, cleanupStep(node))));
    if (all) records.push(withoutReply(await runStep(execute, flow, leftoverStep(keys, options.twoNodes))));
    return records;
  };

  try {
    for (const flow of flowsFor(options.profile)) {
      const notes = flow.notes(context);
      const planned = flow.steps(context);
      if (!Array.isArray(planned)) {
        report.flows.push({ id: flow.id, title: flow.title, notes, skipped: planned.skip, steps: [] });
        continue;
      }
      const steps: StepRecord[] = [];
      report.flows.push({ id: flow.id, title: flow.title, notes, skipped: null, steps });
      let stop: string | null = null;
      for (const step of planned) {
        if (stop === null && interrupted()) {
          report.outcome = 'interrupted';
          stop = 'not run: interrupted';
        }
        if (stop !== null) {
          steps.push(record(skippedRecord(flow.id, step, stop)));
          continue;
        }
        const done = record(withoutReply(await runStep(execute, flow.id, step)));
        steps.push(done);
        if (done.verdict === 'fail') stop = 'not run: an earlier step of this flow failed';
      }
      // Between flows quietly; a failure here shows in the final cleanup.
      if (report.outcome === 'interrupted') break;
      await cleanUp(flow.id, false);
    }
  } catch (err) {
    if (!(err instanceof LinkBroken)) throw err;
    report.message = err.message;
  }

  try {
    report.cleanup.push(...(await cleanUp('cleanup', true)).map(record));
  } catch (err) {
    if (!(err instanceof LinkBroken)) throw err;
    report.message = `${report.message ? `${report.message}; ` : ''}cleanup failed: ${err.message}`;
  }
  if (report.outcome === 'interrupted') {
    report.message ??= 'interrupted; the validation keys were removed';
    return report;
  }
  // Unregistering is judged by what is left: LIO without its pr/ directory
  // answers NOT READY to an unregister that took effect.
  const verify = report.cleanup.find((r) => r.id === 'cleanup.verify');
  const allSteps = [...report.preflight, ...report.flows.flatMap((f) => f.steps), ...(verify ? [verify] : report.cleanup)];
  report.outcome = report.message !== null || failed(allSteps) ? 'fail' : 'pass';
  return report;
}
