/**
 * `pr-helper sg_persist ...`: sg3_utils' sg_persist (0.67) spelling, output
 * and exit statuses, with the command going through the helper socket the
 * way QEMU sends it, so scripts written for sg_persist run unchanged against
 * a helper. Wording follows sg3_utils src/sg_persist.c (prin_work,
 * prout_work, decode_transport_id) and the category strings of libsgutils2.
 *
 * Known differences: no INQUIRY is sent (the helper forwards PR commands
 * only), so the device identification lines sg_persist prints without -n
 * are absent; errors of the helper link have no sg_persist equivalent and
 * exit 99 with their reason.
 */
import { closeSync, fstatSync, constants as fsConstants, openSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { HelperClient } from '../client/client.js';
import { CDB_SIZE, MAX_TRANSFER } from '../protocol/constants.js';
import { formatReservationKey, PrInAction, PrOutAction, prTypeDescription } from '../scsi/pr-codes.js';
import { PrDataError } from '../scsi/pr-data.js';
import { decodePrInHeader, decodeReadFullStatus, decodeReadKeys, decodeReadReservation, decodeReportCapabilities, encodePrInCdb } from '../scsi/pr-in.js';
import { encodeBasicParameters, encodePrOutCdb, encodeRegisterAndMoveParameters } from '../scsi/pr-out.js';
import { decodeSense } from '../scsi/sense.js';
import { ScsiStatus, SenseKey } from '../scsi/status.js';
import { encodeTransportId, parseInitiatorName, type TransportId } from '../scsi/transport-id.js';
import { connectFailureHint, formatCapabilities, processOutput, type Output } from './client-command.js';
import { sgHexDump } from './sg-hex.js';
import { DEFAULT_SOCKET } from './options.js';

const NAME = 'sg_persist';

/** sg3_utils' exit categories (sg_lib.h SG_LIB_CAT_*), with libsgutils2's words for each. */
const Category = {
  SYNTAX_ERROR: { code: 1, words: 'Syntax error' },
  NOT_READY: { code: 2, words: 'Device not ready' },
  MEDIUM_HARD: { code: 3, words: 'Medium or hardware error' },
  ILLEGAL_REQ: { code: 5, words: 'Illegal request' },
  UNIT_ATTENTION: { code: 6, words: 'Unit attention' },
  INVALID_OP: { code: 9, words: 'Illegal request, invalid opcode' },
  ABORTED_COMMAND: { code: 11, words: 'Aborted command' },
  RES_CONFLICT: { code: 24, words: 'Reservation conflict' },
  MALFORMED: { code: 97, words: 'Response to SCSI command malformed' },
  OTHER: { code: 99, words: 'Some other error' },
} as const;
type CategoryInfo = (typeof Category)[keyof typeof Category];

/** SG_LIB_OS_BASE_ERR: an OS error exits 50 + errno, for errno up to 46. */
function osErrorExit(err: unknown): number {
  const code = (err as NodeJS.ErrnoException).code;
  const errno = code ? (osConstants.errno as Record<string, number>)[code] : undefined;
  return errno !== undefined && errno > 0 && errno <= 46 ? 50 + errno : Category.OTHER.code;
}

/** The Linux sg driver's character major (Documentation/admin-guide/devices.txt). */
const SCSI_GENERIC_MAJOR = 21;
const ENOTTY_WORDS = 'Inappropriate ioctl for device';

/**
 * Whether SG_IO on the descriptor fails with ENOTTY, as on a regular file or
 * /dev/null: sg_persist issues the ioctl itself and reports that errno, but
 * the helper protocol carries no errno and the helper answers ABORTED
 * COMMAND 00/06 for it (qemu-pr-helper's sg_io error path).
 */
function sgIoWouldFailWithEnotty(fd: number, status: number, sense: Uint8Array): boolean {
  const d = status === ScsiStatus.CHECK_CONDITION ? decodeSense(sense) : null;
  if (d?.key !== SenseKey.ABORTED_COMMAND || d.asc !== 0x00 || d.ascq !== 0x06) return false;
  const st = fstatSync(fd);
  return !st.isBlockDevice() && !(st.isCharacterDevice() && (Math.floor(st.rdev / 256) & 0xfff) === SCSI_GENERIC_MAJOR);
}

const PRIN_NAMES = ['Read keys', 'Read reservation', 'Report capabilities', 'Read full status'];
const PROUT_NAMES = ['Register', 'Reserve', 'Release', 'Clear', 'Preempt', 'Preempt and abort', 'Register and ignore existing key', 'Register and move', 'Replace lost reservation'];

interface Options {
  in: boolean;
  out: boolean;
  prin: number[];
  prout: number[];
  rk: bigint;
  sark: bigint;
  type: number;
  allTgPt: boolean;
  aptpl: boolean;
  unreg: boolean;
  rtpi: number;
  transportIds: TransportId[];
  allocLength: number;
  device: string | null;
  readonly: boolean;
  /** How many times -H was given: 1 decodes the header, 2 dumps the whole response, 3 also drops the offsets. */
  hex: number;
  socket: string;
}

/** A usage error; `usage` adds the usage text, as sg_persist does for some. */
class Syntax extends Error {
  constructor(message: string, readonly usage = false) {
    super(message);
  }
}

/** getopt_long's table: long name, short letter, whether it takes an argument. */
const OPTIONS: readonly [string, string, boolean][] = [
  ['alloc-length', 'l', true], ['clear', 'C', false], ['device', 'd', true], ['help', 'h', false], ['hex', 'H', false],
  ['in', 'i', false], ['maxlen', 'm', true], ['no-inquiry', 'n', false], ['out', 'o', false], ['param-alltgpt', 'Y', false],
  ['param-aptpl', 'Z', false], ['param-rk', 'K', true], ['param-sark', 'S', true], ['preempt', 'P', false],
  ['preempt-abort', 'A', false], ['prout-type', 'T', true], ['read-full-status', 's', false], ['read-keys', 'k', false],
  ['readonly', 'y', false], ['read-reservation', 'r', false], ['read-status', 's', false], ['register', 'G', false],
  ['register-ignore', 'I', false], ['register-move', 'M', false], ['relative-target-port', 'Q', true], ['release', 'L', false],
  ['replace-lost', 'z', false], ['report-capabilities', 'c', false], ['reserve', 'R', false], ['transport-id', 'X', true],
  ['unreg', 'U', false], ['verbose', 'v', false], ['version', 'V', false], ['socket', '', true],
];

/** sscanf("%x"): leading hex digits, 0x optional; anything after them is ignored. */
function hexArgument(value: string, option: string): bigint {
  const m = /^\s*(?:0x)?([0-9a-f]+)/i.exec(value);
  if (!m || m[1]!.length > 16) throw new Syntax(`bad argument to '--${option}'`);
  return BigInt(`0x${m[1]}`);
}

function numberArgument(value: string, option: string, max: number, radix = 10): number {
  const n = radix === 16 ? Number.parseInt(value.replace(/^0x/i, ''), 16) : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > max) throw new Syntax(`bad argument to '--${option}'`);
  return n;
}

/** sg_persist's symbolic TransportIDs ("iqn.…", "sas,HEX", "fcp,HEX") and this project's initiator names. */
function transportIdArgument(value: string): TransportId[] {
  return value.split(/[ ;]/).filter(Boolean).map((one) => {
    const sas = /^sas,([0-9a-f]{16})$/i.exec(one);
    if (sas) return { protocol: 'sas', address: sas[1]!.toLowerCase() } as TransportId;
    const fcp = /^fcp,([0-9a-f]{16})$/i.exec(one);
    if (fcp) return { protocol: 'fc', wwpn: fcp[1]!.toLowerCase() } as TransportId;
    try {
      return parseInitiatorName(one);
    } catch {
      throw new Syntax(`unable to parse symbolic TransportID: ${one}`);
    }
  });
}

type Parsed = { kind: 'run'; options: Options } | { kind: 'exit'; code: number; out?: string; err?: string };

export function parseSgPersistArgs(argv: readonly string[], env: NodeJS.ProcessEnv): Parsed {
  const o: Options = {
    in: false, out: false, prin: [], prout: [], rk: 0n, sark: 0n, type: 0, allTgPt: false, aptpl: false, unreg: false,
    rtpi: 0, transportIds: [], allocLength: MAX_TRANSFER, device: null, readonly: false, hex: 0,
    socket: env['PR_HELPER_SOCKET'] || DEFAULT_SOCKET,
  };
  const positional: string[] = [];
  const apply = (long: string, value: string | undefined): Parsed | null => {
    const prin = ['read-keys', 'read-reservation', 'report-capabilities', 'read-full-status'];
    const prout: Record<string, number> = {
      register: PrOutAction.REGISTER, reserve: PrOutAction.RESERVE, release: PrOutAction.RELEASE, clear: PrOutAction.CLEAR,
      preempt: PrOutAction.PREEMPT, 'preempt-abort': PrOutAction.PREEMPT_AND_ABORT,
      'register-ignore': PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, 'register-move': PrOutAction.REGISTER_AND_MOVE,
      'replace-lost': PrOutAction.REPLACE_LOST_RESERVATION,
    };
    const name = long === 'read-status' ? 'read-full-status' : long;
    if (prin.includes(name)) o.prin.push(prin.indexOf(name));
    else if (name in prout) o.prout.push(prout[name]!);
    else switch (name) {
      case 'in': o.in = true; break;
      case 'out': o.out = true; break;
      case 'param-rk': o.rk = hexArgument(value!, name); break;
      case 'param-sark': o.sark = hexArgument(value!, name); break;
      case 'prout-type': o.type = numberArgument(value!, name, 15); break;
      case 'param-alltgpt': o.allTgPt = true; break;
      case 'param-aptpl': o.aptpl = true; break;
      case 'unreg': o.unreg = true; break;
      case 'relative-target-port': o.rtpi = numberArgument(value!, name, 0xffff, 16); break;
      case 'transport-id': o.transportIds.push(...transportIdArgument(value!)); break;
      case 'alloc-length': o.allocLength = numberArgument(value!, name, MAX_TRANSFER, 16); break;
      case 'maxlen': o.allocLength = numberArgument(value!, name, MAX_TRANSFER); break;
      case 'device': o.device = value!; break;
      case 'readonly': o.readonly = true; break;
      case 'hex': o.hex++; break;
      case 'socket': o.socket = value!; break;
      case 'help': return { kind: 'exit', code: 0, err: USAGE };
      case 'version': return { kind: 'exit', code: 0, err: 'version: 0.67 20190913 (pr-helper front end)\n' };
      // -n: no INQUIRY is ever sent; -v: nothing more to say.
    }
    return null;
  };
  try {
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i]!;
      if (arg.startsWith('--') && arg.length > 2) {
        const [given, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
        const exact = OPTIONS.filter(([l]) => l === given);
        const matches = exact.length > 0 ? exact : OPTIONS.filter(([l]) => l.startsWith(given));
        if (new Set(matches.map(([l, s]) => (s === 's' ? 's' : l))).size !== 1) throw new Syntax(`unrecognised option '${arg}'`, true);
        const [long, , takes] = matches[0]!;
        let value = inline;
        if (takes && value === undefined) value = argv[++i];
        if (takes && value === undefined) throw new Syntax(`option '--${long}' requires an argument`);
        const done = apply(long, value);
        if (done) return done;
      } else if (arg.startsWith('-') && arg.length > 1) {
        for (let j = 1; j < arg.length; j++) {
          const found = OPTIONS.find(([, s]) => s === arg[j]);
          if (!found) throw new Syntax(`invalid option -- '${arg[j]}'`, true);
          let value: string | undefined;
          if (found[2]) {
            value = j + 1 < arg.length ? arg.slice(j + 1) : argv[++i];
            if (value === undefined) throw new Syntax(`option requires an argument -- '${arg[j]}'`);
            j = arg.length;
          }
          const done = apply(found[0], value);
          if (done) return done;
        }
      } else positional.push(arg);
    }
    if (positional.length > 0) {
      if (o.device !== null || positional.length > 1) throw new Syntax(`Unexpected extra argument: ${positional.at(-1)}`);
      o.device = positional[0]!;
    }
    if (o.device === null) throw new Syntax('No device name given', true);
    if (o.in && o.out) throw new Syntax("choose '--in' _or_ '--out' (not both)");
    if (o.out) {
      if (o.prout.length !== 1) throw new Syntax('just one PR out service action must be specified');
      if (o.prin.length > 0) throw new Syntax("PR In service actions can't be used with '--out'");
    } else {
      if (o.prout.length > 0) throw new Syntax("PR Out service actions need '--out'");
      if (o.prin.length > 1) throw new Syntax('only one PR in service action can be specified');
    }
  } catch (err) {
    if (err instanceof Syntax) return { kind: 'exit', code: Category.SYNTAX_ERROR.code, err: `${err.message}\n${err.usage ? USAGE : ''}` };
    throw err;
  }
  return { kind: 'run', options: o };
}

const USAGE = `Usage: sg_persist [OPTIONS] [DEVICE]
  (pr-helper front end: the command goes through the helper socket,
   --socket=PATH, else $PR_HELPER_SOCKET, else ${DEFAULT_SOCKET})
  See sg_persist(8) for the options.
`;

function categoryOf(status: number, senseBytes: Uint8Array): CategoryInfo {
  if (status === ScsiStatus.RESERVATION_CONFLICT) return Category.RES_CONFLICT;
  if (status !== ScsiStatus.CHECK_CONDITION) return Category.OTHER;
  const sense = decodeSense(senseBytes);
  switch (sense?.key) {
    case SenseKey.NOT_READY:
      return Category.NOT_READY;
    case SenseKey.MEDIUM_ERROR:
    case SenseKey.HARDWARE_ERROR:
      return Category.MEDIUM_HARD;
    case SenseKey.ILLEGAL_REQUEST:
      return sense.asc === 0x20 && sense.ascq === 0 ? Category.INVALID_OP : Category.ILLEGAL_REQ;
    case SenseKey.UNIT_ATTENTION:
      return Category.UNIT_ATTENTION;
    case SenseKey.ABORTED_COMMAND:
      return Category.ABORTED_COMMAND;
    default:
      return Category.OTHER;
  }
}

/** prin_work's / prout_work's failure line for a category. */
function failureLine(direction: 'in' | 'out', action: string, c: CategoryInfo): string {
  if (c === Category.INVALID_OP) return `PR ${direction} (${action}): command not supported\n`;
  if (c === Category.ILLEGAL_REQ) return `PR ${direction} (${action}): bad field in cdb or parameter list (perhaps unsupported service action)\n`;
  return `PR ${direction} (${action}): ${c.words}\n`;
}

function transportIdLines(id: TransportId): string[] {
  const lead = '      ';
  switch (id.protocol) {
    case 'iscsi':
      return id.isid === null ? [`${lead}  iSCSI name: ${id.name}`] : [`${lead}  iSCSI name and session id: ${id.name},i,0x${id.isid}`];
    case 'sas':
      return [`${lead}  SAS address: 0x${id.address.padStart(16, '0')}`];
    case 'fc': {
      // dStrHex of the 8 name bytes, no ASCII column.
      const bytes = id.wwpn.match(/../g)!.join(' ');
      return [`${lead}  FCP-2 World Wide Name:`, ` 00     ${bytes}`];
    }
  }
}

/** What sg_persist prints for PR IN data, or a category for malformed data. */
export function formatPrIn(action: number, data: Uint8Array): string | CategoryInfo {
  if (action === PrInAction.REPORT_CAPABILITIES) {
    const c = decodeReportCapabilities(data);
    if (c.length !== 8) return Category.MALFORMED;
    return formatCapabilities(c);
  }
  const scopeType = (scope: number, type: number): string => `${scope === 0 ? 'scope: LU_SCOPE, ' : `scope: ${scope} `} type: ${prTypeDescription(type)}`;
  if (action === PrInAction.READ_KEYS) {
    const r = decodeReadKeys(data);
    const head = `  PR generation=0x${r.generation.toString(16)}, `;
    if (r.announcedKeys === 0) return `${head}there are NO registered reservation keys\n`;
    const n = r.announcedKeys;
    return `${head}${n === 1 ? '1 registered reservation key follows:' : `${n} registered reservation keys follow:`}\n${r.keys.map((k) => `    ${formatReservationKey(k)}\n`).join('')}`;
  }
  if (action === PrInAction.READ_RESERVATION) {
    const r = decodeReadReservation(data);
    const head = `  PR generation=0x${r.generation.toString(16)}, `;
    const res = r.reservation;
    if (res === null || res.key === null || res.type === null) return `${head}there is NO reservation held\n`;
    return `${head}Reservation follows:\n    Key=${formatReservationKey(res.key)}\n    ${scopeType(res.scope!, res.type)}\n`;
  }
  const s = decodeReadFullStatus(data);
  const lines = [`  PR generation=0x${s.generation.toString(16)}`];
  if (s.additionalLength === 0) lines.push('  No full status descriptors');
  for (const d of s.descriptors) {
    lines.push(`    Key=${formatReservationKey(d.key)}`);
    if (d.allTgPt) lines.push('      All target ports bit set');
    else lines.push('      All target ports bit clear', `      Relative port address: 0x${d.relativeTargetPort.toString(16)}`);
    if (d.rHolder) lines.push('      << Reservation holder >>', `      ${scopeType(d.scope, d.type)}`);
    else lines.push('      not reservation holder');
    if (d.transportIdLength > 0) {
      lines.push('      Transport Id of initiator:');
      if (d.transportId) lines.push(...transportIdLines(d.transportId));
    }
  }
  return lines.join('\n') + '\n';
}

/**
 * What sg_persist --hex prints for PR IN data (prin_work's hex branches).
 * sg_persist reads a zeroed buffer of the allocation length, so bytes the
 * header announces beyond the transfer are dumped as zeros; a dump is never
 * longer than that buffer.
 */
export function formatPrInHex(action: number, data: Uint8Array, hex: number, allocationLength: number): { out: string; malformed: boolean } {
  const buffer = Buffer.alloc(allocationLength);
  buffer.set(data.subarray(0, allocationLength));
  const dump = (start: number, length: number, addressed = true): string =>
    sgHexDump(buffer.subarray(start, Math.max(start, Math.min(start + length, allocationLength))), addressed);
  if (action === PrInAction.REPORT_CAPABILITIES) {
    const length = buffer[1] ?? 0;
    return length === 8 ? { out: dump(0, 8), malformed: false } : { out: dump(0, length), malformed: true };
  }
  // PRGENERATION counts once its 4 bytes fit the allocation length, ADDITIONAL LENGTH once all 8 do.
  const head = Buffer.alloc(8);
  if (buffer.length >= 4) buffer.copy(head, 0, 0, buffer.length >= 8 ? 8 : 4);
  const header = decodePrInHeader(head);
  const generation = header.generation;
  // sg_persist keeps ADDITIONAL LENGTH in an int, so a value of 2^31 or more prints negative.
  const additionalLength = header.additionalLength | 0;
  if (hex > 1) return { out: dump(0, additionalLength + 8, hex === 2), malformed: false };
  // sg_persist prints a length of 0 or less twice, the second time on a line of its own.
  let out = `  PR generation=0x${generation.toString(16)}, `;
  if (additionalLength <= 0) out += `Additional length=${additionalLength}\n`;
  if (additionalLength >>> 0 > (allocationLength - 8) >>> 0) {
    out += `Additional length too large=${additionalLength}, truncate\n${dump(8, allocationLength - 8)}`;
  } else {
    out += `Additional length=${additionalLength}\n${dump(8, additionalLength)}`;
  }
  return { out, malformed: false };
}

function buildCommand(o: Options): { cdb: Buffer; params: Buffer; direction: 'in' | 'out'; action: number; name: string } {
  if (!o.out) {
    const action = o.prin[0] ?? PrInAction.READ_KEYS;
    return { cdb: encodePrInCdb({ action, allocationLength: o.allocLength }, CDB_SIZE), params: Buffer.alloc(0), direction: 'in', action, name: PRIN_NAMES[action]! };
  }
  const action = o.prout[0]!;
  const tids = o.transportIds.map(encodeTransportId);
  const params =
    action === PrOutAction.REGISTER_AND_MOVE
      ? encodeRegisterAndMoveParameters({ reservationKey: o.rk, serviceActionKey: o.sark, unreg: o.unreg, aptpl: o.aptpl, relativeTargetPort: o.rtpi, transportId: tids[0] ?? Buffer.alloc(0) })
      : encodeBasicParameters({ reservationKey: o.rk, serviceActionKey: o.sark, allTgPt: o.allTgPt, aptpl: o.aptpl, specIPt: tids.length > 0, transportIdData: Buffer.concat(tids) });
  const name = action === PrOutAction.REGISTER_AND_MOVE ? 'register and move' : PROUT_NAMES[action]!;
  return { cdb: encodePrOutCdb({ action, type: o.type, parameterListLength: params.length }, CDB_SIZE), params, direction: 'out', action, name };
}

/** `pr-helper sg_persist ARGS`: returns sg_persist's exit status. */
export async function runSgPersistCommand(argv: readonly string[], io: Output = processOutput, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const parsed = parseSgPersistArgs(argv, env);
  if (parsed.kind === 'exit') {
    if (parsed.out) io.out(parsed.out);
    if (parsed.err) io.err(parsed.err);
    return parsed.code;
  }
  const o = parsed.options;
  const command = buildCommand(o);
  const failed = (c: CategoryInfo, line: string): number => {
    io.err(`${line}${NAME} failed: ${c.words}\n`);
    return c.code;
  };
  let fd: number;
  try {
    fd = openSync(o.device!, (o.readonly ? fsConstants.O_RDONLY : fsConstants.O_RDWR) | fsConstants.O_NONBLOCK);
  } catch (err) {
    const why = (err as Error).message.replace(/^\w+: /, '').replace(/, open .*$/, '');
    io.err(`${NAME}: error opening file ${o.device} (${o.readonly ? 'ro' : 'rw'}): ${why.charAt(0).toUpperCase()}${why.slice(1)}\n`);
    return osErrorExit(err);
  }
  let client: HelperClient | null = null;
  try {
    try {
      client = await HelperClient.connect(o.socket);
    } catch (err) {
      io.err(`${NAME}: ${connectFailureHint(err, o.socket)}\n`);
      return osErrorExit(err);
    }
    let reply;
    try {
      reply = await client.execute(command.cdb, fd, command.params);
    } catch (err) {
      return failed(Category.OTHER, `PR ${command.direction} (${command.name}): helper: ${(err as Error).message}\n`);
    }
    if (reply.status !== ScsiStatus.GOOD && sgIoWouldFailWithEnotty(fd, reply.status, reply.sense)) {
      const { direction, name } = command;
      io.err(`Persistent reservation ${direction}: pass-through os error: ${ENOTTY_WORDS}\nPR ${direction} (${name}): ${ENOTTY_WORDS}\n${NAME} failed: ${ENOTTY_WORDS}\n`);
      return 50 + osConstants.errno.ENOTTY;
    }
    if (reply.status !== ScsiStatus.GOOD) {
      const c = categoryOf(reply.status, reply.sense);
      return failed(c, failureLine(command.direction, command.name, c));
    }
    if (command.direction === 'out') return 0;
    if (o.hex > 0) {
      const { out, malformed } = formatPrInHex(command.action, reply.data, o.hex, o.allocLength);
      io.out(out);
      return malformed ? failed(Category.MALFORMED, 'Unexpected response for PRIN Report Capabilities\n') : 0;
    }
    let text: string | CategoryInfo;
    try {
      text = formatPrIn(command.action, reply.data);
    } catch (err) {
      if (!(err instanceof PrDataError)) throw err;
      text = Category.MALFORMED;
    }
    if (typeof text !== 'string') return failed(text, command.action === PrInAction.REPORT_CAPABILITIES ? 'Unexpected response for PRIN Report Capabilities\n' : '');
    io.out(text);
    return 0;
  } finally {
    client?.close();
    closeSync(fd);
  }
}
