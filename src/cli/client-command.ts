/**
 * `pr-helper client`: sends one PERSISTENT RESERVE IN/OUT command through a
 * running helper, the way QEMU would, and prints the result in the style of
 * sg3_utils' sg_persist (its options, output wording and exit statuses).
 */
import { Argument, Command, CommanderError, InvalidArgumentError } from 'commander';
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { HelperClient } from '../client/client.js';
import { CDB_SIZE, MAX_TRANSFER } from '../protocol/constants.js';
import {
  formatReservationKey,
  PR_TYPE_KEYWORDS,
  PrInAction,
  PrOutAction,
  PrType,
  prTypeDescription,
  prTypeFromKeyword,
  scopeName,
} from '../scsi/pr-codes.js';
import { PrDataError } from '../scsi/pr-data.js';
import {
  decodeReadFullStatus,
  decodeReadKeys,
  decodeReadReservation,
  decodeReportCapabilities,
  encodePrInCdb,
  type ReadFullStatus,
  type ReadKeys,
  type ReadReservation,
  type ReportCapabilities,
} from '../scsi/pr-in.js';
import { encodeBasicParameters, encodePrOutCdb, encodeRegisterAndMoveParameters } from '../scsi/pr-out.js';
import { additionalSenseName, ascAscqText, decodeSense, senseKeyName } from '../scsi/sense.js';
import { statusName as nameOfStatus } from '../scsi/pr-describe.js';
import { ScsiStatus, SenseKey } from '../scsi/status.js';
import { encodeTransportId, initiatorName, parseInitiatorName, type TransportId } from '../scsi/transport-id.js';
import { DEFAULT_SOCKET, PROGRAM, UsageError } from './options.js';

const COMMAND = `${PROGRAM} client`;

/** sg3_utils' exit categories (sg3_utils(8)), so scripts written for sg_persist keep working. */
const ExitCode = {
  OK: 0,
  OTHER: 1,
  NOT_READY: 2,
  MEDIUM_HARDWARE: 3,
  ILLEGAL_REQUEST: 5,
  UNIT_ATTENTION: 6,
  INVALID_OPCODE: 9,
  ABORTED_COMMAND: 11,
  FILE_ERROR: 15,
  RESERVATION_CONFLICT: 24,
} as const;

const EXIT_STATUS_HELP = `
Actions joined by 'then' run in order on one connection, so they come from one
initiator (in the simulator's default configuration every process is one):
  ... register --sa-key 0xaa then reserve --key 0xaa --type wr-ex
The first action's --socket, --device, --readonly and --json apply to all.
With --json a sequence prints one JSON array: one object per action that ran,
in order, the failed one last (a single action prints one object).
Exit status (as sg_persist):
   0  success
   1  usage error, helper unreachable or protocol failure, or another status
   2  CHECK CONDITION, NOT READY
   3  CHECK CONDITION, MEDIUM ERROR or HARDWARE ERROR
   5  CHECK CONDITION, ILLEGAL REQUEST (e.g. invalid field in CDB or parameter list)
   6  CHECK CONDITION, UNIT ATTENTION (e.g. registrations preempted; retry)
   9  CHECK CONDITION, ILLEGAL REQUEST, invalid command operation code (no PR support)
  11  CHECK CONDITION, ABORTED COMMAND (e.g. the helper lost the device)
  15  DEVICE could not be opened
  24  RESERVATION CONFLICT
`;


export interface DecodedSenseInfo {
  readonly key: number;
  readonly keyName: string;
  readonly asc: number;
  readonly ascq: number;
  /** Null for codes outside the table. */
  readonly description: string | null;
}

/** A non-GOOD reply, named and classified. */
export interface ReplyFailure {
  readonly status: number;
  readonly statusName: string;
  readonly sense: DecodedSenseInfo | null;
  /** e.g. "CHECK CONDITION: ILLEGAL REQUEST, asc/ascq 24/00 (invalid field in CDB)". */
  readonly message: string;
  readonly exitCode: number;
}

function exitCodeFor(status: number, sense: DecodedSenseInfo | null): number {
  if (status === ScsiStatus.RESERVATION_CONFLICT) return ExitCode.RESERVATION_CONFLICT;
  if (status !== ScsiStatus.CHECK_CONDITION || sense === null) return ExitCode.OTHER;
  switch (sense.key) {
    case SenseKey.NOT_READY:
      return ExitCode.NOT_READY;
    case SenseKey.MEDIUM_ERROR:
    case SenseKey.HARDWARE_ERROR:
      return ExitCode.MEDIUM_HARDWARE;
    case SenseKey.ILLEGAL_REQUEST:
      return sense.asc === 0x20 && sense.ascq === 0x00 ? ExitCode.INVALID_OPCODE : ExitCode.ILLEGAL_REQUEST;
    case SenseKey.UNIT_ATTENTION:
      return ExitCode.UNIT_ATTENTION;
    case SenseKey.ABORTED_COMMAND:
      return ExitCode.ABORTED_COMMAND;
    default:
      return ExitCode.OTHER;
  }
}

/** Null for GOOD; otherwise what went wrong, in words and as an exit status. */
export function describeReply(status: number, senseBytes: Uint8Array): ReplyFailure | null {
  if (status === ScsiStatus.GOOD) return null;
  const statusName = nameOfStatus(status);
  let sense: DecodedSenseInfo | null = null;
  let message = statusName;
  if (status === ScsiStatus.CHECK_CONDITION) {
    const code = decodeSense(senseBytes);
    if (code === null) {
      message += ' without valid sense data';
    } else {
      const ascq = ascAscqText(code.asc, code.ascq);
      sense = { key: code.key, keyName: senseKeyName(code.key), asc: code.asc, ascq: code.ascq, description: additionalSenseName(code.asc, code.ascq) };
      message += `: ${sense.keyName}, asc/ascq ${ascq}${sense.description ? ` (${sense.description})` : ''}`;
    }
  }
  return { status, statusName, sense, message, exitCode: exitCodeFor(status, sense) };
}

type InAction = 'read-keys' | 'read-reservation' | 'report-capabilities' | 'read-full-status';
type OutAction =
  | 'register'
  | 'register-ignore'
  | 'reserve'
  | 'release'
  | 'clear'
  | 'preempt'
  | 'preempt-abort'
  | 'register-move';
type Action = InAction | OutAction;

const IN_ACTIONS: Readonly<Record<InAction, { sa: number; label: string }>> = {
  'read-keys': { sa: PrInAction.READ_KEYS, label: 'READ KEYS' },
  'read-reservation': { sa: PrInAction.READ_RESERVATION, label: 'READ RESERVATION' },
  'report-capabilities': { sa: PrInAction.REPORT_CAPABILITIES, label: 'REPORT CAPABILITIES' },
  'read-full-status': { sa: PrInAction.READ_FULL_STATUS, label: 'READ FULL STATUS' },
};

/** Which options each action takes; the device would ignore the others, so giving one is a mistake. */
type ParamOption = 'key' | 'saKey' | 'type' | 'aptpl' | 'allTgPt' | 'specIPt' | 'transportId' | 'relativeTargetPort' | 'unreg';
const OUT_ACTIONS: Readonly<Record<OutAction, { sa: number; label: string; takes: readonly ParamOption[]; needsType: boolean }>> = {
  register: { sa: PrOutAction.REGISTER, label: 'REGISTER', takes: ['key', 'saKey', 'aptpl', 'allTgPt', 'specIPt', 'transportId'], needsType: false },
  // SPEC_I_PT is accepted so that a device's refusal of it can be observed (SPC-4 allows it with REGISTER only).
  'register-ignore': {
    sa: PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY,
    label: 'REGISTER AND IGNORE EXISTING KEY',
    takes: ['saKey', 'aptpl', 'allTgPt', 'specIPt', 'transportId'],
    needsType: false,
  },
  reserve: { sa: PrOutAction.RESERVE, label: 'RESERVE', takes: ['key', 'type'], needsType: true },
  release: { sa: PrOutAction.RELEASE, label: 'RELEASE', takes: ['key', 'type'], needsType: true },
  clear: { sa: PrOutAction.CLEAR, label: 'CLEAR', takes: ['key'], needsType: false },
  preempt: { sa: PrOutAction.PREEMPT, label: 'PREEMPT', takes: ['key', 'saKey', 'type'], needsType: true },
  'preempt-abort': { sa: PrOutAction.PREEMPT_AND_ABORT, label: 'PREEMPT AND ABORT', takes: ['key', 'saKey', 'type'], needsType: true },
  'register-move': {
    sa: PrOutAction.REGISTER_AND_MOVE,
    label: 'REGISTER AND MOVE',
    takes: ['key', 'saKey', 'aptpl', 'transportId', 'relativeTargetPort', 'unreg'],
    needsType: false,
  },
};

const OPTION_FLAGS: Readonly<Record<ParamOption, string>> = {
  key: '--key',
  saKey: '--sa-key',
  type: '--type',
  aptpl: '--aptpl',
  allTgPt: '--all-tg-pt',
  specIPt: '--spec-i-pt',
  transportId: '--transport-id',
  relativeTargetPort: '--relative-target-port',
  unreg: '--unreg',
};

function parseKey(value: string): bigint {
  const digits = value.replace(/^0x/i, '');
  if (!/^[0-9a-f]{1,16}$/i.test(digits)) throw new InvalidArgumentError('expected up to 16 hex digits (0x optional, as sg_persist).');
  return BigInt(`0x${digits}`);
}

/** A --type keyword or number; the values are SPC TYPE codes, which differ from Linux pr.h's numbering. */
function parseType(value: string): number {
  const named = prTypeFromKeyword(value);
  if (named !== undefined) return named;
  // Any 4-bit code is sent as is, so obsolete/reserved types can be tried against a device.
  if (/^\d+$/.test(value) && Number(value) <= 15) return Number(value);
  throw new InvalidArgumentError(`expected ${PR_TYPE_KEYWORDS.join(', ')} or a number 0-15.`);
}

function numberParser(max: number) {
  return (value: string): number => {
    const n = /^0x[0-9a-f]+$/i.test(value) ? parseInt(value, 16) : /^\d+$/.test(value) ? Number(value) : NaN;
    if (!(n >= 0 && n <= max)) throw new InvalidArgumentError(`expected a number from 0 to ${max} (decimal or 0x hex).`);
    return n;
  };
}

function parseTransportId(value: string, previous: TransportId[] | undefined): TransportId[] {
  try {
    return [...(previous ?? []), parseInitiatorName(value)];
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message}.`);
  }
}

function buildProgram(): Command {
  return new Command(COMMAND)
    .description('Send one persistent reservation command through a running pr-helper, like sg_persist.')
    .usage('--socket S --device PATH ACTION [options] [then ACTION [options]]...')
    .helpOption('-h, --help', 'display this help and exit')
    .addArgument(
      new Argument('<action>', 'PR IN (the first four) or PR OUT service action').choices([...Object.keys(IN_ACTIONS), ...Object.keys(OUT_ACTIONS)]),
    )
    .option('-k, --socket <path>', 'the helper socket', DEFAULT_SOCKET)
    .requiredOption('-d, --device <path>', 'device (or simulated image) the command is about; opened read-write unless --readonly')
    .option('--key <hex>', 'RESERVATION KEY (hex, default 0)', parseKey)
    .option('--sa-key <hex>', 'SERVICE ACTION RESERVATION KEY (hex, default 0)', parseKey)
    .option('--type <type>', `reservation type: ${PR_TYPE_KEYWORDS.join('|')} or its number`, parseType)
    .option('--aptpl', 'set APTPL (persist through power loss)')
    .option('--all-tg-pt', 'set ALL_TG_PT (register on all target ports)')
    .option('--spec-i-pt', 'set SPEC_I_PT (also register the --transport-id initiators); implied by --transport-id with register')
    .option('--transport-id <name>', 'initiator (iqn./eui./naa. iSCSI name[,i,0xISID], naa.<16 hex> SAS, fc.<16 hex> FC); repeatable', parseTransportId)
    .option('--relative-target-port <n>', 'register-move: RELATIVE TARGET PORT IDENTIFIER of the destination', numberParser(0xffff))
    .option('--unreg', 'register-move: unregister the source afterwards')
    .option('--alloc-length <n>', `PR IN allocation length (default and maximum ${MAX_TRANSFER})`, numberParser(MAX_TRANSFER))
    .option('--readonly', 'open DEVICE O_RDONLY (the helper then refuses PR OUT, as for a read-only QEMU drive)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', EXIT_STATUS_HELP)
    .exitOverride();
}

interface ClientOptions {
  socket: string;
  device: string;
  key?: bigint;
  saKey?: bigint;
  type?: number;
  aptpl?: boolean;
  allTgPt?: boolean;
  specIPt?: boolean;
  transportId?: TransportId[];
  relativeTargetPort?: number;
  unreg?: boolean;
  allocLength?: number;
  readonly?: boolean;
  json?: boolean;
}

interface Request {
  action: Action;
  label: string;
  cdb: Buffer;
  params: Buffer;
  options: ClientOptions;
}

const isGiven = (o: ClientOptions, name: ParamOption): boolean => o[name] !== undefined;

function buildRequest(action: Action, given: ClientOptions): Request {
  const o = { ...given, transportId: given.transportId ?? [] };
  if (action in IN_ACTIONS) {
    const { sa, label } = IN_ACTIONS[action as InAction];
    const stray = (Object.keys(OPTION_FLAGS) as ParamOption[]).find((name) => isGiven(given, name));
    if (stray) throw new UsageError(`${OPTION_FLAGS[stray]} does not apply to ${action}`);
    const cdb = encodePrInCdb({ action: sa, allocationLength: o.allocLength ?? MAX_TRANSFER }, CDB_SIZE);
    return { action, label: `PR IN ${label}`, cdb, params: Buffer.alloc(0), options: o };
  }
  const spec = OUT_ACTIONS[action as OutAction];
  const stray = (Object.keys(OPTION_FLAGS) as ParamOption[]).find((name) => isGiven(given, name) && !spec.takes.includes(name));
  if (stray) throw new UsageError(`${OPTION_FLAGS[stray]} does not apply to ${action}`);
  if (o.allocLength !== undefined) throw new UsageError(`--alloc-length applies to PR IN actions only, not ${action}`);
  if (spec.needsType && o.type === undefined) throw new UsageError(`${action} needs --type`);

  let params: Buffer;
  if (action === 'register-move') {
    if (o.transportId.length !== 1) throw new UsageError('register-move needs exactly one --transport-id (the destination initiator)');
    if (o.relativeTargetPort === undefined) throw new UsageError('register-move needs --relative-target-port');
    params = encodeRegisterAndMoveParameters({
      reservationKey: o.key,
      serviceActionKey: o.saKey,
      unreg: o.unreg,
      aptpl: o.aptpl,
      relativeTargetPort: o.relativeTargetPort,
      transportId: encodeTransportId(o.transportId[0]!),
    });
  } else {
    params = encodeBasicParameters({
      reservationKey: o.key,
      serviceActionKey: o.saKey,
      // As sg_persist: naming initiators is what SPEC_I_PT is for.
      specIPt: Boolean(o.specIPt) || o.transportId.length > 0,
      allTgPt: o.allTgPt,
      aptpl: o.aptpl,
      transportIdData: Buffer.concat(o.transportId.map(encodeTransportId)),
    });
  }
  if (params.length > MAX_TRANSFER) throw new UsageError(`the parameter list (${params.length} bytes) exceeds the helper's ${MAX_TRANSFER}`);
  const cdb = encodePrOutCdb({ action: spec.sa, type: o.type ?? 0, parameterListLength: params.length }, CDB_SIZE);
  return { action, label: `PR OUT ${spec.label}`, cdb, params, options: o };
}

type Parsed = { kind: 'run'; requests: Request[] } | { kind: 'exit'; code: number; stdout?: string; stderr?: string };

function usageLine(message: string): string {
  return `${COMMAND}: ${message}; see '${COMMAND} --help'\n`;
}

/** Options every action of a `then` sequence shares: one connection, one descriptor. */
const SHARED_OPTIONS = ['-k', '--socket', '-d', '--device'];
const SHARED_FLAGS = ['--readonly', '--json'];

/**
 * Splits `A [opts] then B [opts] ...` into one argv per action. The socket,
 * device, --readonly and --json of the first action apply to all of them, since
 * they share one connection and so act as one initiator.
 */
function splitSequence(argv: readonly string[]): string[][] {
  const parts: string[][] = [[]];
  for (const arg of argv) {
    if (arg === 'then') parts.push([]);
    else parts.at(-1)!.push(arg);
  }
  const shared: string[] = [];
  parts[0]!.forEach((arg, i, all) => {
    if (SHARED_OPTIONS.includes(arg) && all[i + 1] !== undefined) shared.push(arg, all[i + 1]!);
    else if (SHARED_OPTIONS.some((o) => o.startsWith('--') && arg.startsWith(`${o}=`)) || SHARED_FLAGS.includes(arg)) shared.push(arg);
  });
  return parts.map((part, i) => (i === 0 ? part : [...part, ...shared]));
}

function parse(argv: readonly string[]): Parsed {
  const requests: Request[] = [];
  for (const part of splitSequence(argv)) {
    const program = buildProgram();
    let out = '';
    program.configureOutput({ writeOut: (s) => (out += s), writeErr: () => {} });
    try {
      program.parse(part, { from: 'user' });
      requests.push(buildRequest(program.args[0] as Action, program.opts<ClientOptions>()));
    } catch (err) {
      if (err instanceof CommanderError) {
        if (err.exitCode === 0) return { kind: 'exit', code: 0, stdout: out };
        return { kind: 'exit', code: ExitCode.OTHER, stderr: usageLine(err.message.replace(/^error: /, '').replace(/\n+$/, '').replace(/\n/g, ' ')) };
      }
      if (err instanceof UsageError) return { kind: 'exit', code: ExitCode.OTHER, stderr: usageLine(err.message) };
      throw err;
    }
  }
  return { kind: 'run', requests };
}

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export const processOutput: Output = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

function formatReadKeys(r: ReadKeys): string {
  if (r.announcedKeys === 0) return `PR generation=0x${r.generation.toString(16)}, there are NO registered reservation keys\n`;
  const n = r.announcedKeys;
  const lines = [`PR generation=0x${r.generation.toString(16)}, ${n} registered reservation key${n === 1 ? '' : 's'} follow${n === 1 ? 's' : ''}:`];
  for (const key of r.keys) lines.push(`    ${formatReservationKey(key)}`);
  return lines.join('\n') + '\n';
}

function formatReservation(r: ReadReservation): string {
  const head = `PR generation=0x${r.generation.toString(16)}, `;
  const res = r.reservation;
  if (res === null) return `${head}there is NO reservation held\n`;
  const key = res.key === null ? '(cut off)' : formatReservationKey(res.key);
  const scopeType = res.type === null ? 'scope and type cut off' : `scope: ${scopeName(res.scope!)},  type: ${prTypeDescription(res.type)}`;
  return `${head}Reservation follows:\n    Key=${key}\n    ${scopeType}\n`;
}

/** sg_persist's REPORT CAPABILITIES text (sg_persist.c), for `client` and `pr-helper sg_persist` alike. */
export function formatCapabilities(c: ReportCapabilities): string {
  const bit = (b: boolean): number => (b ? 1 : 0);
  const lines = [
    'Report capabilities response:',
    `  Replace Lost Reservation Capable(RLR_C): ${bit(c.rlrC)}`,
    `  Compatible Reservation Handling(CRH): ${bit(c.crh)}`,
    `  Specify Initiator Ports Capable(SIP_C): ${bit(c.sipC)}`,
    `  All Target Ports Capable(ATP_C): ${bit(c.atpC)}`,
    `  Persist Through Power Loss Capable(PTPL_C): ${bit(c.ptplC)}`,
    `  Type Mask Valid(TMV): ${bit(c.tmv)}`,
    `  Allow Commands: ${c.allowCommands}`,
    `  Persist Through Power Loss Active(PTPL_A): ${bit(c.ptplA)}`,
  ];
  if (c.tmv && c.typeMask) {
    const m = c.typeMask;
    lines.push(
      '    Support indicated in Type mask:',
      `      ${prTypeDescription(PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS)}: ${bit(m.wrExAr)}`,
      `      ${prTypeDescription(PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY)}: ${bit(m.exAcRo)}`,
      `      ${prTypeDescription(PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY)}: ${bit(m.wrExRo)}`,
      `      ${prTypeDescription(PrType.EXCLUSIVE_ACCESS)}: ${bit(m.exAc)}`,
      `      ${prTypeDescription(PrType.WRITE_EXCLUSIVE)}: ${bit(m.wrEx)}`,
      `      ${prTypeDescription(PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS)}: ${bit(m.exAcAr)}`,
    );
  }
  return lines.join('\n') + '\n';
}

function describeTransportId(id: TransportId): string {
  switch (id.protocol) {
    case 'iscsi':
      return id.isid === null ? `iSCSI name: ${id.name}` : `iSCSI initiator port: ${id.name},i,0x${id.isid}`;
    case 'fc':
      return `FC N_Port name: 0x${id.wwpn}`;
    case 'sas':
      return `SAS address: 0x${id.address}`;
  }
}

function formatFullStatus(s: ReadFullStatus): string {
  const lines = [`PR generation=0x${s.generation.toString(16)}${s.descriptors.length === 0 && !s.truncated ? ', there are NO registrations' : ''}`];
  for (const d of s.descriptors) {
    lines.push(`    Key=${formatReservationKey(d.key)}`);
    if (d.allTgPt) lines.push('      All target ports bit set');
    else lines.push('      All target ports bit clear', `      Relative port address: 0x${d.relativeTargetPort.toString(16)}`);
    if (d.rHolder) lines.push('      << Reservation holder >>', `      scope: ${scopeName(d.scope)},  type: ${prTypeDescription(d.type)}`);
    else lines.push('      not reservation holder');
    lines.push('      Transport Id of initiator:');
    lines.push(`        ${d.transportId ? describeTransportId(d.transportId) : `(${d.transportIdError})`}`);
  }
  return lines.join('\n') + '\n';
}

function readKeysJson(r: ReadKeys) {
  return { generation: r.generation, keys: r.keys.map(formatReservationKey), truncated: r.truncated };
}

function reservationJson(r: ReadReservation) {
  const res = r.reservation;
  return {
    generation: r.generation,
    reservation:
      res === null
        ? null
        : {
            key: res.key === null ? null : formatReservationKey(res.key),
            scope: res.scope,
            type: res.type,
            typeName: res.type === null ? null : prTypeDescription(res.type),
          },
    truncated: r.truncated,
  };
}

function fullStatusJson(s: ReadFullStatus) {
  return {
    generation: s.generation,
    registrations: s.descriptors.map((d) => ({
      key: formatReservationKey(d.key),
      allTgPt: d.allTgPt,
      rHolder: d.rHolder,
      scope: d.scope,
      type: d.type,
      typeName: d.rHolder ? prTypeDescription(d.type) : null,
      relativeTargetPort: d.relativeTargetPort,
      transportId: d.transportId,
      initiator: d.transportId ? initiatorName(d.transportId) : null,
      transportIdError: d.transportIdError,
    })),
    truncated: s.truncated,
  };
}

/** Decodes PR IN data into [human text, JSON fields, truncated]. */
function renderIn(action: InAction, data: Buffer): [string, Record<string, unknown>, boolean] {
  switch (action) {
    case 'read-keys': {
      const r = decodeReadKeys(data);
      return [formatReadKeys(r), readKeysJson(r), r.truncated];
    }
    case 'read-reservation': {
      const r = decodeReadReservation(data);
      return [formatReservation(r), reservationJson(r), r.truncated];
    }
    case 'report-capabilities': {
      const c = decodeReportCapabilities(data);
      return [formatCapabilities(c), { ...c }, c.truncated];
    }
    case 'read-full-status': {
      const s = decodeReadFullStatus(data);
      return [formatFullStatus(s), fullStatusJson(s), s.truncated];
    }
  }
}

function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

/** Why connecting failed, with what to do about it. */
export function connectFailureHint(err: unknown, socket: string): string {
  const code = (err as { code?: string }).code;
  if (code === 'ENOENT') return `${socket} does not exist: is pr-helper running?`;
  if (code === 'ECONNREFUSED') return `nothing listens on ${socket} (stale socket of a stopped helper?)`;
  if (code === 'EACCES' || code === 'EPERM') return `no permission to connect to ${socket}: the socket needs write permission for this user`;
  return `cannot connect to ${socket}: ${(err as Error).message}`;
}

/** Where an action's JSON result goes: printed at once, or collected into the sequence's array. */
type Emit = (result: Record<string, unknown>) => void;

function failure(request: Request, io: Output, emit: Emit, code: number, message: string, extra: Record<string, unknown> = {}): number {
  if (request.options.json) emit({ action: request.action, error: message, exitCode: code, ...extra });
  else io.err(`${COMMAND}: ${message}\n`);
  return code;
}

/** Runs the requests in order on one connection; stops at the first that fails. */
async function executeAll(requests: readonly Request[], io: Output): Promise<number> {
  const o = requests[0]!.options;
  if (!o.json || requests.length === 1) return executeEach(requests, io, (result) => io.out(json(result)));
  const results: Record<string, unknown>[] = [];
  const code = await executeEach(requests, io, (result) => results.push(result));
  io.out(json(results));
  return code;
}

async function executeEach(requests: readonly Request[], io: Output, emit: Emit): Promise<number> {
  const o = requests[0]!.options;
  let fd: number;
  try {
    // O_NONBLOCK as sg_persist: opening a device without medium must not hang.
    fd = openSync(o.device, (o.readonly ? fsConstants.O_RDONLY : fsConstants.O_RDWR) | fsConstants.O_NONBLOCK);
  } catch (err) {
    return failure(requests[0]!, io, emit, ExitCode.FILE_ERROR, `cannot open ${o.device}: ${(err as Error).message}`);
  }
  let client: HelperClient | null = null;
  try {
    try {
      client = await HelperClient.connect(o.socket);
    } catch (err) {
      return failure(requests[0]!, io, emit, ExitCode.OTHER, `${connectFailureHint(err, o.socket)}; try '${PROGRAM} check --socket ${o.socket}'`);
    }
    for (const request of requests) {
      const code = await execute(client, fd, request, io, emit);
      if (code !== ExitCode.OK) return code;
    }
    return ExitCode.OK;
  } finally {
    client?.close();
    closeSync(fd);
  }
}

async function execute(client: HelperClient, fd: number, request: Request, io: Output, emit: Emit): Promise<number> {
  const o = request.options;
  const fail = (code: number, message: string, extra: Record<string, unknown> = {}): number => failure(request, io, emit, code, message, extra);
  try {
    const reply = await client.execute(request.cdb, fd, request.params);
    const failed = describeReply(reply.status, reply.sense);
    if (failed) {
      return fail(failed.exitCode, `${request.label}: ${failed.message}`, {
        status: failed.statusName,
        statusCode: failed.status,
        sense: failed.sense,
      });
    }
    if (!(request.action in IN_ACTIONS)) {
      if (o.json) emit({ action: request.action, status: 'GOOD' });
      return ExitCode.OK;
    }
    let rendered: ReturnType<typeof renderIn>;
    try {
      rendered = renderIn(request.action as InAction, reply.data);
    } catch (err) {
      if (err instanceof PrDataError) return fail(ExitCode.OTHER, `${request.label}: ${err.message}; raise --alloc-length`);
      throw err;
    }
    const [text, fields, truncated] = rendered;
    if (o.json) {
      emit({ action: request.action, status: 'GOOD', ...fields });
    } else {
      io.out(text);
      if (truncated) {
        io.err(`${COMMAND}: warning: the device has more data than the ${reply.data.length} bytes returned; raise --alloc-length\n`);
      }
    }
    return ExitCode.OK;
  } catch (err) {
    return fail(ExitCode.OTHER, `${request.label}: ${(err as Error).message}`);
  }
}

/** `pr-helper client ARGS`: returns the exit status. */
export async function runClientCommand(argv: readonly string[], io: Output = processOutput): Promise<number> {
  const parsed = parse(argv);
  if (parsed.kind === 'exit') {
    if (parsed.stdout) io.out(parsed.stdout);
    if (parsed.stderr) io.err(parsed.stderr);
    return parsed.code;
  }
  return executeAll(parsed.requests, io);
}
