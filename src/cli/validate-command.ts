/**
 * `pr-helper validate`: proves that the chain QEMU will use (helper socket,
 * fd passing, device, target) gives a would-be cluster the persistent
 * reservation semantics WSFC validation and fence_scsi need, before anyone
 * builds the cluster. Each device is one node's I_T nexus to the shared LUN.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { HelperClient } from '../client/client.js';
import { formatReservationKey } from '../scsi/pr-codes.js';
import { PROFILES, type Profile } from '../validate/plan.js';
import { runValidation, type FlowRecord, type StepRecord, type ValidationReport } from '../validate/run.js';
import { NODE_LABEL, type NodeName } from '../validate/steps.js';
import { connectFailureHint, processOutput, type Output } from './client-command.js';
import { DEFAULT_SOCKET, PROGRAM } from './options.js';
import { parseSubcommandArgs } from './subcommand-args.js';

const COMMAND = `${PROGRAM} validate`;

export const ValidateExit = { PASS: 0, FAIL: 1, NOT_RUN: 2, INTERRUPTED: 130 } as const;

const OUTCOME_EXIT: Readonly<Record<ValidationReport['outcome'], number>> = {
  pass: ValidateExit.PASS,
  fail: ValidateExit.FAIL,
  refused: ValidateExit.NOT_RUN,
  interrupted: ValidateExit.INTERRUPTED,
};

const EXIT_HELP = `
Each --device is one cluster node's path to the shared LUN (its own I_T nexus:
another iSCSI session or initiator name, another path). With one device only
the single-node checks run; the report says what needs a second.

The LUN must be idle: registrations that are not this run's make it refuse,
unless --force (it then never sends CLEAR and never preempts foreign keys).
Its own keys are random per run and node and are always removed, also after
a failure or Ctrl-C.

Exit status: 0 every step passed (warnings allowed), 1 a step failed or usage
error, 2 not run (foreign registrations, device or helper unreachable),
130 interrupted (keys removed).
`;

function parseProfile(value: string): Profile {
  if ((PROFILES as readonly string[]).includes(value)) return value as Profile;
  throw new InvalidArgumentError(`expected ${PROFILES.join(', ')}.`);
}

function buildProgram(): Command {
  return new Command(COMMAND)
    .description('Check a shared LUN through the helper for WSFC validation and fence_scsi, step by step.')
    .usage('--device A [--device B] [--socket S] [--profile wsfc|fence_scsi|all] [--force] [--json]')
    .helpOption('-h, --help', 'display this help and exit')
    .option('-k, --socket <path>', 'the helper socket', DEFAULT_SOCKET)
    .addOption(
      new Option('-d, --device <path>', 'a node\'s device; give it twice for two nodes')
        .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value])
        .makeOptionMandatory(),
    )
    .option('--profile <name>', `which flows to run: ${PROFILES.join(', ')}`, parseProfile, 'all' as Profile)
    .option('--force', 'run even though other initiators have registrations')
    .option('--json', 'print the report as JSON')
    .addHelpText('after', EXIT_HELP)
    .allowExcessArguments(false)
    .exitOverride();
}

interface Node {
  readonly name: NodeName;
  readonly device: string;
  readonly fd: number;
  readonly client: HelperClient;
}

const randomKey = (): bigint => randomBytes(8).readBigUInt64BE(0);

function formatStep(r: StepRecord): string {
  const lines = [`  ${NODE_LABEL[r.node]}: ${r.title} — expected ${r.expected} — observed ${r.observed} — ${r.verdict.toUpperCase()}`];
  if (r.retriedPast) lines.push(`        (retried after ${r.retriedPast})`);
  if (r.explanation && r.verdict !== 'pass') lines.push(`        why: ${r.explanation.cause}`, `        fix: ${r.explanation.fix}`);
  return lines.join('\n');
}

function formatFlow(f: FlowRecord): string {
  const lines = [`${f.title}`];
  for (const note of f.notes) lines.push(`  note: ${note}`);
  if (f.skipped) lines.push(`  skipped: ${f.skipped}`);
  lines.push(...f.steps.map(formatStep));
  return lines.join('\n');
}

/** The human report. */
export function formatReport(report: ValidationReport, socket: string, devices: readonly string[]): string {
  const head = [`${COMMAND}: profile ${report.profile}, ${devices.length} device${devices.length === 1 ? '' : 's'} through ${socket}`];
  devices.forEach((d, i) => head.push(`  ${NODE_LABEL[report.nodes[i]!]}: ${d}`));
  if (report.keys) {
    const keys = report.nodes.map((n) => `${NODE_LABEL[n]} ${formatReservationKey(report.keys![n])}`).join(', ');
    head.push(`  keys: ${keys} (random, this run only)`);
  }
  const sections = [head.join('\n'), ['Preflight', ...report.preflight.map(formatStep)].join('\n'), ...report.flows.map(formatFlow)];
  if (report.cleanup.length > 0) sections.push(['Cleanup', ...report.cleanup.map(formatStep)].join('\n'));
  const all = [...report.preflight, ...report.flows.flatMap((f) => f.steps), ...report.cleanup];
  const count = (v: string): number => all.filter((s) => s.verdict === v).length;
  const failedIds = all.filter((s) => s.verdict === 'fail').map((s) => s.id);
  let result = `Result: ${report.outcome.toUpperCase()}: ${count('pass')} passed, ${count('warn')} warnings, ${count('fail')} failed, ${count('skip')} skipped`;
  if (failedIds.length > 0) result += ` (first failure: ${failedIds[0]})`;
  if (report.message) result += `\n${report.message}`;
  sections.push(result);
  return sections.join('\n\n') + '\n';
}

const hexKey = (_key: string, value: unknown): unknown => (typeof value === 'bigint' ? formatReservationKey(value) : value);

/** `pr-helper validate ARGS`: returns the exit status. */
export async function runValidateCommand(argv: readonly string[], io: Output = processOutput): Promise<number> {
  const program = buildProgram();
  const exit = parseSubcommandArgs(program, argv, io);
  if (exit !== null) return exit;
  const o = program.opts<{ socket: string; device: string[]; profile: Profile; force?: boolean; json?: boolean }>();
  if (o.device.length > 2) {
    io.err(`${COMMAND}: at most two devices (two nodes); see '${COMMAND} --help'\n`);
    return ValidateExit.FAIL;
  }

  const nodes: Node[] = [];
  const notRun = (message: string): number => {
    if (o.json) io.out(JSON.stringify({ outcome: 'not-run', message }, null, 2) + '\n');
    else io.err(`${COMMAND}: ${message}\n`);
    return ValidateExit.NOT_RUN;
  };
  try {
    for (const [i, device] of o.device.entries()) {
      const name: NodeName = i === 0 ? 'A' : 'B';
      let fd: number;
      try {
        // O_NONBLOCK as sg_persist: opening a device without medium must not hang.
        fd = openSync(device, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
      } catch (err) {
        return notRun(`cannot open ${device}: ${(err as Error).message}`);
      }
      let client: HelperClient;
      try {
        client = await HelperClient.connect(o.socket);
      } catch (err) {
        closeSync(fd);
        return notRun(`${connectFailureHint(err, o.socket)}; try '${PROGRAM} check --socket ${o.socket}'`);
      }
      nodes.push({ name, device, fd, client });
    }

    // The first Ctrl-C lets the running command finish and the keys be removed; a second one gives up on that.
    let interrupted = false;
    const onSignal = (): void => {
      if (interrupted) {
        io.err(`${COMMAND}: interrupted again; cleanup abandoned, the validation keys may remain on the LUN\n`);
        process.exit(ValidateExit.INTERRUPTED);
      }
      interrupted = true;
      io.err(`${COMMAND}: interrupted; removing the validation keys (Ctrl-C again to abandon)\n`);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    let report: ValidationReport;
    try {
      const byName = new Map(nodes.map((n) => [n.name, n]));
      report = await runValidation((node, cdb, params) => {
        const n = byName.get(node)!;
        return n.client.execute(cdb, n.fd, params);
      }, { profile: o.profile, twoNodes: nodes.length === 2, force: Boolean(o.force), random: randomKey, interrupted: () => interrupted });
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }

    if (o.json) {
      io.out(JSON.stringify({ socket: o.socket, devices: Object.fromEntries(nodes.map((n) => [n.name, n.device])), ...report }, hexKey, 2) + '\n');
    } else {
      io.out(formatReport(report, o.socket, o.device));
    }
    return OUTCOME_EXIT[report.outcome];
  } finally {
    for (const n of nodes) {
      n.client.close();
      closeSync(n.fd);
    }
  }
}
