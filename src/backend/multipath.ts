/**
 * dm-multipath, the I/O half: detects that a request's descriptor is a
 * multipath map (st_rdev -> /sys/dev/block/MAJ:MIN/dm/uuid starting with
 * "mpath-"), opens the map's paths (its slaves in sysfs, /dev/<name>) itself and
 * executes the decisions of multipath-plan.ts on them with SG_IO, each path's
 * command on its own native thread. Nothing here blocks the event loop: sysfs
 * reads and opens go through fs.promises, SG_IO through the native worker
 * threads. No error stops the daemon: detection problems fall back to the
 * single-path SG_IO backend, path problems become path failures, and a bug
 * becomes a CHECK CONDITION.
 *
 * Detection runs on every request (a few small sysfs reads), so a map whose
 * paths change is never served from a stale cache. Those reads are synchronous
 * on purpose: sysfs attributes are generated from kernel memory and never wait
 * for a device, while libuv's small thread pool can be filled by open() calls
 * of hung path nodes, and detection (which every block-device request needs)
 * must not queue behind them. Path fds are raw descriptors closed with
 * close(2) directly (fast, and not through that pool either).
 */
import { closeSync, constants as fsConstants, fstatSync, open as openCallback, readdirSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { basename, join } from 'node:path';
import type { Logger } from 'pino';
import * as native from '../native/binding.js';
import { MAX_TRANSFER } from '../protocol/constants.js';
import type { CommandResult } from '../protocol/response.js';
import { formatReservationKey, PrInAction, PrOutAction, prOutActionName } from '../scsi/pr-codes.js';
import { describePrCommand, statusName } from '../scsi/pr-describe.js';
import type { ReservationDescriptor } from '../scsi/pr-in.js';
import { fixedSense, Sense } from '../scsi/sense.js';
import { ScsiStatus } from '../scsi/status.js';
import type { BackendRequest } from './backend.js';
import { MapKeyBook, type MapKey } from './multipath-keys.js';
import {
  carriesKeyProbe,
  carryVerdict,
  checksKeyFirst,
  classifyOutcome,
  decideFanOut,
  decideRelease,
  exhaustedReply,
  isUnitAttention,
  keyStillRegistered,
  parsePtplActive,
  parseReadKeys,
  parseReadReservation,
  planOut,
  preemptDone,
  preemptsAnother,
  prInCommand,
  prOutCommand,
  repairCommand,
  reserveHeldByUnreachablePath,
  singleStep,
  unreachable,
  UNIT_ATTENTION_RETRIES,
  type BuiltOut,
  type FanOutMode,
  type OutCommand,
  type OutPlan,
  type PathAnswer,
  type PathResult,
  type Repair,
} from './multipath-plan.js';

/** What identifies the device behind a descriptor. */
export interface DeviceIdentity {
  readonly block: boolean;
  readonly major: number;
  readonly minor: number;
}

export type SgioFunction = (fd: number, cdb: Buffer, direction: number, data: Buffer | number, timeoutMs: number) => Promise<native.SgioResult>;

export interface MultipathOptions {
  readonly timeoutMs: number;
  readonly log: Logger;
  /** Where sysfs is mounted (tests point this at a fake tree). */
  readonly sysfsRoot?: string;
  /** Where the path nodes live: <devRoot>/<slave name>. */
  readonly devRoot?: string;
  /** Replaces native.sgio (tests). */
  readonly sgio?: SgioFunction;
  /** Replaces fstat-based identification of descriptors (tests). */
  readonly identify?: (fd: number) => DeviceIdentity | null;
  /** An open() of a path node that takes longer counts as a path failure. */
  readonly openTimeoutMs?: number;
  /** Replaces open(2) of path nodes, resolving with the descriptor (tests). */
  readonly openFile?: (path: string, flags: number) => Promise<number>;
  /** How often the paths of the maps with a remembered key are looked at, in ms; 0: never (tests call poll()). */
  readonly pollIntervalMs?: number;
  /** Runs `tick` every `ms` until the returned function is called (tests replace the clock). */
  readonly every?: (ms: number, tick: () => void) => () => void;
  /** How long a command waits for a path's re-registration before it goes on without that path, in ms. */
  readonly repairWaitMs?: number;
}

const S_IFMT = 0o170000;
const S_IFBLK = 0o060000;
const DEFAULT_OPEN_TIMEOUT_MS = 10_000;
/**
 * A few small sysfs reads per served map: cheap enough to notice a returning
 * path within seconds, the window in which its nexus lacks the map's key.
 */
export const DEFAULT_POLL_INTERVAL_MS = 2_000;
/**
 * QEMU retries EAGAIN for up to ~1 s before it fails the I/O or stops the VM
 * (2c3165a1a6); a command never waits longer than this for a re-registration.
 */
export const DEFAULT_REPAIR_WAIT_MS = 250;
const MPATH_UUID_PREFIX = 'mpath-';

/** Linux dev_t -> major/minor (glibc's gnu_dev_major/minor). */
export function splitDevice(rdev: number): { major: number; minor: number } {
  const dev = BigInt(rdev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

export function identifyByFstat(fd: number): DeviceIdentity | null {
  let status: Stats;
  try {
    status = fstatSync(fd);
  } catch {
    return null;
  }
  return { block: (status.mode & S_IFMT) === S_IFBLK, ...splitDevice(status.rdev) };
}

/** How a path of the map may be used, from its SCSI device state. */
export type PathUse = 'first' | 'later' | 'last-resort' | 'never';

export interface MapPath {
  /** Kernel name, e.g. "sdb". */
  readonly name: string;
  /** The node the daemon opens. */
  readonly node: string;
  /** "MAJ:MIN" from sysfs, when readable. */
  readonly devno: string | null;
  /** /sys/block/<name>/device/state; null when the slave has none. */
  readonly state: string | null;
  /** SCSI host number (H of H:C:T:L): paths on one host share the initiator port. */
  readonly host: number | null;
  readonly use: PathUse;
}

export interface MapInfo {
  /** "MAJ:MIN" of the map. */
  readonly devno: string;
  readonly name: string;
  readonly uuid: string;
  /** Sorted by name. */
  readonly paths: readonly MapPath[];
}

export type Probe = { readonly kind: 'not-multipath' } | { readonly kind: 'map'; readonly map: MapInfo } | { readonly kind: 'error'; readonly error: Error };

/**
 * running: use. No state file (not a SCSI disk): try after the running ones.
 * blocked / quiesce: the kernel is holding its commands back (a transport is
 * recovering); only worth a try when nothing else answered, and never part of
 * a fan-out, which would wait for it. offline, deleted, ...: never.
 */
export function pathUse(state: string | null): PathUse {
  if (state === null) return 'later';
  switch (state) {
    case 'running':
      return 'first';
    case 'blocked':
    case 'created-blocked':
    case 'quiesce':
      return 'last-resort';
    default:
      return 'never';
  }
}

/** The SCSI host of a block device, from its sysfs device link (.../hostH/targetH:C:T/H:C:T:L). */
function scsiHost(deviceLink: string): number | null {
  try {
    const match = /^(\d+):\d+:\d+:\d+$/.exec(basename(readlinkSync(deviceLink)));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

function readTrimmed(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw err;
  }
}

/** Reads the map's identity and paths from sysfs; anything but a multipath map is 'not-multipath'. */
export function probeMap(identity: DeviceIdentity, sysfsRoot = '/sys', devRoot = '/dev'): Probe {
  if (!identity.block) return { kind: 'not-multipath' };
  const devno = `${identity.major}:${identity.minor}`;
  const base = join(sysfsRoot, 'dev', 'block', devno);
  try {
    const uuid = readTrimmed(join(base, 'dm', 'uuid'));
    if (uuid === null || !uuid.startsWith(MPATH_UUID_PREFIX)) return { kind: 'not-multipath' };
    const name = readTrimmed(join(base, 'dm', 'name')) ?? devno;
    let slaves: string[];
    try {
      slaves = readdirSync(join(base, 'slaves')).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      slaves = [];
    }
    const paths = slaves.map((slave): MapPath => {
      if (slave.includes('/') || slave === '.' || slave === '..') throw new Error(`odd slave name ${JSON.stringify(slave)}`);
      const state = readTrimmed(join(sysfsRoot, 'block', slave, 'device', 'state'));
      const slaveDev = readTrimmed(join(sysfsRoot, 'block', slave, 'dev'));
      const host = scsiHost(join(sysfsRoot, 'block', slave, 'device'));
      return { name: slave, node: join(devRoot, slave), devno: slaveDev, state, host, use: pathUse(state) };
    });
    return { kind: 'map', map: { devno, name, uuid, paths } };
  } catch (err) {
    return { kind: 'error', error: err instanceof Error ? err : new Error(String(err)) };
  }
}

const errnoName = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? (err as Error).message ?? String(err);

const ACCESS_HINT =
  'the daemon opens the paths of a multipath map itself: run it as root without -u, or with a group (-g) that may open the path nodes read-write (e.g. -g disk)';

/**
 * Serves PR requests whose descriptor is a multipath map; execute() answers
 * null for everything else. PR OUT on one map is serialized (a fan-out and its
 * repairs must not interleave with another client's command on the same map);
 * PR IN and other maps run concurrently.
 */
export class MultipathRouter {
  private readonly sysfsRoot: string;
  private readonly devRoot: string;
  private readonly sgio: SgioFunction;
  private readonly identify: (fd: number) => DeviceIdentity | null;
  private readonly openTimeoutMs: number;
  private readonly openFile: (path: string, flags: number) => Promise<number>;
  /** Nodes whose access error was logged at error level (again only after a success). */
  private readonly accessLogged = new Set<string>();
  /** open() calls of path nodes that have not returned yet, by node. */
  private readonly pendingOpens = new Map<string, Promise<unknown>>();
  /** Tail of each map's PR OUT queue. */
  private readonly mapQueues = new Map<string, Promise<void>>();
  /** The key of each map served, and which of its paths carry it. */
  private readonly book = new MapKeyBook();
  /** Re-registrations of returning paths that have not finished, by path node. */
  private readonly repairs = new Map<string, Promise<void>>();
  private readonly repairWaitMs: number;
  private readonly stopWatch: (() => void) | null;
  /** Looks at a map's paths that have not finished, by dm uuid. */
  private readonly polling = new Map<string, Promise<void>>();

  constructor(private readonly options: MultipathOptions) {
    this.sysfsRoot = options.sysfsRoot ?? '/sys';
    this.devRoot = options.devRoot ?? '/dev';
    this.sgio = options.sgio ?? native.sgio;
    this.identify = options.identify ?? identifyByFstat;
    this.openTimeoutMs = options.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS;
    this.openFile = options.openFile ?? openFd;
    this.repairWaitMs = options.repairWaitMs ?? DEFAULT_REPAIR_WAIT_MS;
    const interval = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    this.stopWatch = interval > 0 ? (options.every ?? everyMs)(interval, () => void this.poll()) : null;
  }

  /** Stops watching the maps' paths. */
  close(): void {
    this.stopWatch?.();
  }

  /** The reply for a request on a multipath map, or null when the descriptor is not one. */
  async execute(request: BackendRequest, identity = this.identify(request.fd)): Promise<CommandResult | null> {
    const log = this.options.log;
    if (!identity?.block) return null;
    const probe = probeMap(identity, this.sysfsRoot, this.devRoot);
    if (probe.kind === 'not-multipath') return null;
    if (probe.kind === 'error') {
      // dm-multipath forwards SG_IO on the map to its current path: degraded (one
      // path), but the guest keeps working.
      log.warn({ device: `${identity.major}:${identity.minor}`, err: probe.error }, 'cannot read the device-mapper state from sysfs; treating the device as a single path');
      return null;
    }
    const mapLog = log.child({ map: probe.map.name, dm: probe.map.devno });
    try {
      if (request.direction === 'in') {
        // PR IN changes nothing: it only waits (briefly) for re-registrations
        // that are already running, so that it does not go down such a path.
        this.book.observe(probe.map);
        await this.settle(probe.map);
        return await this.withSession(probe.map, mapLog, (session) => this.prIn(session, request));
      }
      const plan = planOut(request.cdb, request.params);
      if (plan.kind === 'reply') {
        mapLog.debug({ why: plan.why }, 'PR OUT answered without a path');
        return plan.result;
      }
      return await this.serialized(probe.map.uuid, async () => {
        // The paths may have changed while this command waited for the map.
        const map = this.reprobe(probe.map.devno, probe.map.uuid) ?? probe.map;
        await this.ensureKeys(map, mapLog);
        return this.withSession(map, mapLog, (session) => this.prOut(session, plan, request));
      });
    } catch (err) {
      mapLog.error({ err }, 'multipath command failed; replying ABORTED COMMAND');
      return { status: ScsiStatus.CHECK_CONDITION, sense: fixedSense(Sense.IO_PROCESS_TERMINATED) };
    }
  }

  private async withSession<T>(map: MapInfo, log: Logger, task: (session: PathSession) => Promise<T>): Promise<T> {
    const session = new PathSession(this, map, log, this.busyPaths(map));
    try {
      return await task(session);
    } finally {
      session.close();
    }
  }

  // ---- keeping every path on the map's key --------------------------------

  /**
   * One look at every map with a remembered key: paths that are usable again,
   * or joined the map, and may lack its key get their re-registration started
   * (the interval timer calls this; tests await it). Each map is looked at on
   * its own: a map whose PR OUT queue is held up by a hung path does not keep
   * the others from being looked at on the next tick. The look waits in the
   * map's PR OUT queue, so a repair never starts in the middle of a fan-out,
   * but it does not wait for the repairs it starts: they run on the paths'
   * native threads, and the next command on the map waits for them briefly.
   */
  poll(): Promise<void> {
    return Promise.all(this.book.served().map(({ uuid, devno }) => this.pollMap(uuid, devno))).then(() => undefined);
  }

  private pollMap(uuid: string, devno: string): Promise<void> {
    const running = this.polling.get(uuid);
    if (running) return running;
    const look = this.lookAtMap(uuid, devno).finally(() => this.polling.delete(uuid));
    this.polling.set(uuid, look);
    return look;
  }

  private async lookAtMap(uuid: string, devno: string): Promise<void> {
    const map = this.reprobe(devno, uuid);
    if (!map) {
      this.book.forget(uuid);
      this.options.log.info({ dm: devno, uuid }, 'multipath map gone; its key is no longer watched');
      return;
    }
    if (this.book.observe(map).length === 0) return;
    const log = this.options.log.child({ map: map.name, dm: map.devno });
    try {
      await this.serialized(uuid, async () => {
        // The map may have changed while the look waited for its queue.
        const now = this.reprobe(devno, uuid);
        if (now) this.startRepairs(now, log);
      });
    } catch (err) {
      log.error({ err }, 're-registering returning paths failed');
    }
  }

  /** The map behind a device number again, or null when it is no longer the map `uuid`. */
  private reprobe(devno: string, uuid: string): MapInfo | null {
    const [major, minor] = devno.split(':').map(Number) as [number, number];
    const probe = probeMap({ block: true, major, minor }, this.sysfsRoot, this.devRoot);
    return probe.kind === 'map' && probe.map.uuid === uuid ? probe.map : null;
  }

  /**
   * Starts the re-registration of every usable path that may lack the map's
   * key and waits for the map's running ones, at most repairWaitMs: a path
   * whose repair takes longer is left out of the command that waited.
   */
  private async ensureKeys(map: MapInfo, log: Logger): Promise<void> {
    this.startRepairs(map, log);
    await this.settle(map);
  }

  private startRepairs(map: MapInfo, log: Logger): void {
    const suspects = this.book.observe(map);
    const key = this.book.key(map.uuid);
    if (key) for (const name of suspects) this.startRepair(map, name, key, log);
  }

  private startRepair(map: MapInfo, name: string, key: MapKey, log: Logger): void {
    const node = map.paths.find((p) => p.name === name)?.node;
    if (node === undefined || this.repairs.has(node)) return;
    const task = this.reRegister(map, name, key, log.child({ path: name }))
      .catch((err: unknown) => log.error({ err, path: name }, 're-registering a path of the map failed'))
      .finally(() => this.repairs.delete(node));
    this.repairs.set(node, task);
  }

  private async settle(map: MapInfo): Promise<void> {
    const pending = map.paths.map((p) => this.repairs.get(p.node)).filter((t): t is Promise<void> => t !== undefined);
    if (pending.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.repairWaitMs);
      timer.unref();
    });
    await Promise.race([Promise.all(pending), waited]);
    clearTimeout(timer);
  }

  /** Paths with a re-registration still running: no command goes down them. */
  private busyPaths(map: MapInfo): ReadonlySet<string> {
    return new Set(map.paths.filter((p) => this.repairs.has(p.node)).map((p) => p.name));
  }

  /**
   * One path that may lack the map's key: if the key is still registered on
   * the logical unit and the path does not carry it, REGISTER AND IGNORE
   * EXISTING KEY gives it the key (or, for a map unregistered through us,
   * takes the path's old registration away). Never re-registers a key another
   * node removed: that would undo a fence.
   */
  private async reRegister(map: MapInfo, name: string, key: MapKey, log: Logger): Promise<void> {
    const session = new PathSession(this, map, log, new Set(), true);
    try {
      if (key.key !== 0n) {
        const keys = await session.runSettled(name, prInCommand(PrInAction.READ_KEYS), null);
        if (keys.kind !== 'answer' || keys.status !== ScsiStatus.GOOD || keys.data === null) {
          log.debug({ result: summarize(keys) }, 'returning path: READ KEYS failed; trying again later');
          return;
        }
        const still = keyStillRegistered(keys.data, key.key);
        if (still === null) {
          log.warn({ result: summarize(keys) }, 'returning path: READ KEYS data unusable; trying again later');
          return;
        }
        if (!still) {
          this.book.forget(map.uuid, key.generation);
          log.warn(
            { key: formatReservationKey(key.key) },
            "the map's key is no longer registered on the device (another initiator preempted or cleared it): returning paths are not re-registered",
          );
          return;
        }
      }
      // A REGISTER with the wrong APTPL would change the device's persistence.
      const capabilities = await session.runSettled(name, prInCommand(PrInAction.REPORT_CAPABILITIES), null);
      const aptpl = ptplOf(capabilities);
      if (aptpl === null) {
        log.debug({ result: summarize(capabilities) }, 'returning path: REPORT CAPABILITIES failed; trying again later');
        return;
      }
      if (key.key !== 0n) {
        const probe = carriesKeyProbe(key.key, { allTgPt: key.allTgPt, aptpl });
        const verdict = carryVerdict([await session.runSettled(name, probe.cdb, probe.params)]);
        if (verdict.carrying.length > 0) {
          this.book.verify(map.uuid, name, key.generation);
          log.debug({ key: formatReservationKey(key.key) }, 'returning path still carries the map key');
          return;
        }
        if (verdict.stale.length === 0) return;
      }
      const fix = repairCommand({ saKey: key.key, allTgPt: key.allTgPt, aptpl });
      const result = await session.runSettled(name, fix.cdb, fix.params);
      audit(log, map, name, fix, result, 'path usable again without the map key');
      if (result.kind === 'answer' && result.status === ScsiStatus.GOOD && !this.book.verify(map.uuid, name, key.generation)) {
        log.info('the map key changed during the re-registration; the path is checked again');
      }
    } finally {
      session.close();
    }
  }

  /**
   * Before RESERVE, PREEMPT (AND ABORT) and RELEASE: every usable path is
   * asked whether it carries the guest's key; if one does (so the map's nexus
   * is registered with it), the others get it too. If none does, nothing is
   * touched and the device answers the command as it would a single path.
   *
   * A UNIT ATTENTION on the path the command would have gone to first is the
   * command's answer (returned; the guest retries), as it would have been
   * without the check; on the other paths it is consumed, as in a fan-out.
   */
  private async checkKeyFirst(session: PathSession, command: OutCommand): Promise<CommandResult | null> {
    if (!checksKeyFirst(command.action) || command.key === 0n) return null;
    const known = this.book.key(session.map.uuid);
    const allTgPt = known?.key === command.key && known.allTgPt;
    const targets = allTgPt ? session.onePerHost(session.fanOutPaths()) : session.fanOutPaths();
    if (targets.length === 0) return null;
    const first = session.order()[0];
    // The guest's command is still to come: its UNIT ATTENTION stays its own.
    const capabilities = await session.run(targets[0]!, prInCommand(PrInAction.REPORT_CAPABILITIES), 'in');
    if (targets[0] === first && isUnitAttention(capabilities)) return answerReply(capabilities, 0);
    // The probe is a REGISTER: with the wrong APTPL it would change the device's
    // persistence, so without a REPORT CAPABILITIES answer there is no check.
    let aptpl = isUnitAttention(capabilities) ? null : ptplOf(capabilities);
    for (const p of targets) {
      if (aptpl !== null) break;
      aptpl = ptplOf(await session.runSettled(p, prInCommand(PrInAction.REPORT_CAPABILITIES), null));
    }
    if (aptpl === null) {
      session.log.warn({ key: formatReservationKey(command.key) }, 'REPORT CAPABILITIES answered on no path; the paths are not checked for the key');
      return null;
    }
    const probe = carriesKeyProbe(command.key, { allTgPt, aptpl });
    const answers = await Promise.all(targets.map((p) => session.runSettled(p, probe.cdb, probe.params)));
    const why = `check before ${prOutActionName(command.action)}`;
    for (const r of answers) audit(session.log, session.map, r.path, probe, r, `${why}: does the path carry the key?`);
    const verdict = carryVerdict(answers);
    if (verdict.carrying.length === 0) {
      session.log.debug({ key: formatReservationKey(command.key) }, 'no path of the map carries the key; nothing to repair');
      return null;
    }
    const repaired = await this.repair(session, { why: 'missed-registration', paths: verdict.stale, saKey: command.key, allTgPt, aptpl }, why);
    this.carrying(session.map, command.key, allTgPt, [...verdict.carrying, ...repaired]);
    return null;
  }

  /** These paths carry `key`: remember it, or mark them if it is the key remembered. */
  private carrying(map: MapInfo, key: bigint, allTgPt: boolean, paths: readonly string[]): void {
    const known = this.book.key(map.uuid);
    if (known?.key !== key) {
      this.book.learn(map, key, allTgPt, paths);
      return;
    }
    for (const p of paths) this.book.verify(map.uuid, p, known.generation);
  }

  /** @internal A path failed at the transport level: check its key before it is used again. */
  pathFailed(map: MapInfo, name: string): void {
    this.book.suspect(map.uuid, name);
  }

  private async serialized<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.mapQueues.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = previous.then(() => mine);
    this.mapQueues.set(key, tail);
    await previous;
    try {
      return await task();
    } finally {
      release();
      if (this.mapQueues.get(key) === tail) this.mapQueues.delete(key);
    }
  }

  // ---- PR IN: one working path --------------------------------------------

  private async prIn(session: PathSession, request: BackendRequest): Promise<CommandResult> {
    const results: PathResult[] = session.skipped();
    for (const path of session.order()) {
      const result = await session.run(path, request.cdb, 'in');
      results.push(result);
      if (singleStep(result, 'in') === 'done') {
        session.note(results);
        return answerReply(result as PathAnswer, request.transferLength);
      }
    }
    session.note(results);
    return exhaustedReply(results);
  }

  // ---- PR OUT ---------------------------------------------------------------

  private async prOut(session: PathSession, plan: Exclude<OutPlan, { kind: 'reply' }>, request: BackendRequest): Promise<CommandResult> {
    switch (plan.kind) {
      case 'fan-out': {
        const attention = plan.mode === 'release' ? await this.checkKeyFirst(session, plan.command) : null;
        return attention ?? this.fanOut(session, request, plan.mode, plan.command);
      }
      case 'single': {
        const attention = await this.checkKeyFirst(session, plan.command);
        return attention ?? this.single(session, request, plan.command, plan.after, plan.checkOwnReservation);
      }
    }
  }

  private async single(
    session: PathSession,
    request: BackendRequest,
    command: OutCommand,
    after: 'none' | 'restore-other-paths' | 'unregister-other-paths',
    checkOwnReservation: boolean,
  ): Promise<CommandResult> {
    const results: PathResult[] = session.skipped();
    for (const path of session.order()) {
      const result = await session.run(path, request.cdb, 'out', request.params);
      results.push(result);
      if (singleStep(result, 'out') !== 'done') continue;
      session.note(results);
      const answer = result as PathAnswer;
      if (answer.status === ScsiStatus.GOOD && after === 'restore-other-paths') await this.restoreOtherPaths(session, command, path);
      if (answer.status === ScsiStatus.GOOD && after === 'unregister-other-paths') {
        const others = session.fanOutPaths().filter((p) => p !== path);
        const unregistered = await this.repair(session, { why: 'rollback', paths: others, saKey: 0n, allTgPt: false, aptpl: command.aptpl }, 'REGISTER AND MOVE with UNREG');
        this.book.learn(session.map, 0n, false, [path, ...unregistered]);
      }
      // CLEAR removed every registration on the device: nothing left to keep.
      if (answer.status === ScsiStatus.GOOD && command.action === PrOutAction.CLEAR) this.book.forget(session.map.uuid);
      return answerReply(answer, 0);
    }
    session.note(results);
    const someUnreached = results.some((r) => r.kind === 'failure');
    const conflicted = results.some((r) => r.kind === 'answer' && r.status === ScsiStatus.RESERVATION_CONFLICT);
    if (checkOwnReservation && someUnreached && conflicted) {
      const reservation = await this.readReservation(session, answeredPaths(results));
      if (reservation !== undefined && reserveHeldByUnreachablePath(command, reservation)) {
        session.log.info({ key: formatReservationKey(command.key) }, 'RESERVE: the reservation is already held with our key through a path that is not reachable; GOOD');
        return { status: ScsiStatus.GOOD };
      }
    }
    if (preemptsAnother(command) && conflicted && results.some((r) => r.kind === 'failure' && r.mayHaveExecuted)) {
      // The PREEMPT may have been performed through the path that failed: then
      // the retry on the next path conflicts because the victim's key is gone.
      const answered = answeredPaths(results);
      const keys = await this.readVia(session, answered, PrInAction.READ_KEYS, parseReadKeys);
      const reservation = keys === undefined ? undefined : await this.readReservation(session, answered);
      if (keys !== undefined && reservation !== undefined && preemptDone(command, keys, reservation)) {
        session.log.info(
          { key: formatReservationKey(command.key), preempted: formatReservationKey(command.saKey) },
          `${prOutActionName(command.action)}: performed through a path that failed before it answered (the key is gone and the reservation is ours); GOOD`,
        );
        return { status: ScsiStatus.GOOD };
      }
    }
    return exhaustedReply(results);
  }

  private async fanOut(session: PathSession, request: BackendRequest, mode: FanOutMode, command: OutCommand): Promise<CommandResult> {
    // With ALL_TG_PT one registration covers every target port of the initiator
    // port, so (like libmpathpersist) only one path per SCSI host gets it: a second
    // path of the same initiator port would only conflict with the first.
    const targets = mode !== 'release' && command.allTgPt ? session.onePerHost(session.fanOutPaths()) : session.fanOutPaths();
    const results = new Map<string, PathResult>();
    for (const skipped of session.skipped('fan-out')) results.set(skipped.path, skipped);
    await Promise.all(targets.map(async (p) => results.set(p, await session.run(p, request.cdb, 'out', request.params))));
    for (let retries = 0; ; retries++) {
      const list = [...results.values()];
      const decision = decideFanOut(mode, command, list, retries < UNIT_ATTENTION_RETRIES);
      if (decision.kind === 'retry') {
        session.log.info({ paths: decision.paths }, 'unit attention on some paths of a fan-out; sending the command to them again');
        await Promise.all(decision.paths.map(async (p) => results.set(p, await session.run(p, request.cdb, 'out', request.params))));
        continue;
      }
      session.note(list);
      if (decision.kind === 'verify-release') return this.verifyRelease(session, command, list);
      if (decision.note) session.log.warn({ action: prOutActionName(command.action) }, decision.note);
      const repaired = decision.repair ? await this.repair(session, decision.repair, prOutActionName(command.action)) : [];
      if (mode !== 'release' && decision.result.status === ScsiStatus.GOOD) {
        const registered = list.filter((r) => r.kind === 'answer' && r.status === ScsiStatus.GOOD).map((r) => r.path);
        this.book.learn(session.map, command.saKey, command.allTgPt, [...registered, ...repaired]);
        // Paths that came up while the registration ran get the key now too
        // (libmpathpersist 0.14 fixed the same window).
        const now = this.reprobe(session.map.devno, session.map.uuid);
        if (now) await this.ensureKeys(now, session.log);
      }
      return decision.result;
    }
  }

  private async verifyRelease(session: PathSession, command: OutCommand, results: PathResult[]): Promise<CommandResult> {
    const reservation = await this.readReservation(session, answeredPaths(results));
    const decision = decideRelease(command, results, reservation);
    if (decision.kind === 'reply') {
      if (decision.note) session.log.warn(decision.note);
      return decision.result;
    }
    return this.takeOver(session, command, decision.reservation, results);
  }

  /**
   * The reservation is held with our key through a path that cannot be reached,
   * so RELEASE cannot reach the holder. Like libmpathpersist: PREEMPT our own key
   * through a reachable registered path (the reservation moves to that path's
   * nexus, the device drops our other registrations), RELEASE there, then
   * register the key on the other reachable paths again.
   */
  private async takeOver(session: PathSession, command: OutCommand, reservation: ReservationDescriptor, results: PathResult[]): Promise<CommandResult> {
    const candidates = results.filter((r): r is PathAnswer => r.kind === 'answer' && r.status === ScsiStatus.GOOD).map((r) => r.path);
    const via = candidates[0];
    if (via === undefined) return exhaustedReply(results);
    const log = session.log.child({ via, key: formatReservationKey(command.key), type: reservation.type });
    log.warn('RELEASE: the reservation holder is an unreachable path of the map; moving the reservation to a reachable path to release it');
    const aptpl = await this.ptplActive(session, via);
    const preempt = prOutCommand(PrOutAction.PREEMPT, reservation.scope, reservation.type, command.key, command.key);
    const preempted = await session.runSettled(via, preempt.cdb, preempt.params);
    audit(log, session.map, via, preempt, preempted, 'RELEASE take-over: move the reservation to a reachable path');
    if (preempted.kind !== 'answer' || preempted.status !== ScsiStatus.GOOD) {
      log.error({ result: summarize(preempted) }, 'RELEASE take-over: PREEMPT failed');
      return preempted.kind === 'answer' ? answerReply(preempted, 0) : preempted.reply;
    }
    const release = prOutCommand(PrOutAction.RELEASE, reservation.scope, reservation.type, command.key, 0n);
    const released = await session.runSettled(via, release.cdb, release.params);
    audit(log, session.map, via, release, released, 'RELEASE take-over: release it there');
    const restored = await this.repair(session, { why: 'missed-registration', paths: session.fanOutPaths().filter((p) => p !== via), saKey: command.key, allTgPt: false, aptpl }, 'RELEASE take-over');
    // The PREEMPT removed the registrations of the unreachable paths: they are
    // re-registered when they come back (poll), the others carry the key.
    for (const p of session.map.paths) if (p.name !== via && !restored.includes(p.name)) this.book.suspect(session.map.uuid, p.name);
    this.carrying(session.map, command.key, false, [via, ...restored]);
    if (released.kind !== 'answer' || released.status !== ScsiStatus.GOOD) {
      log.error({ result: summarize(released) }, 'RELEASE take-over: RELEASE failed after the PREEMPT');
      return released.kind === 'answer' ? answerReply(released, 0) : released.reply;
    }
    return { status: ScsiStatus.GOOD };
  }

  /**
   * After PREEMPT (AND ABORT) with our own key (or 0 under an all-registrants
   * reservation) the device removed the registrations of our other paths but
   * kept the sender's: a single-path LUN keeps the sender registered, so
   * register the key on the other paths again. Only when READ KEYS shows that
   * the sender did keep its registration (LIO removes even the sender in some
   * cases; then the map's nexus is unregistered, as on that single-path LUN).
   */
  private async restoreOtherPaths(session: PathSession, command: OutCommand, sender: string): Promise<void> {
    const keys = await session.runSettled(sender, prInCommand(PrInAction.READ_KEYS), null);
    let kept = false;
    try {
      kept = keys.kind === 'answer' && keys.status === ScsiStatus.GOOD && keys.data !== null && parseReadKeys(keys.data).includes(command.key);
    } catch {
      kept = false;
    }
    if (!kept) {
      session.log.info({ key: formatReservationKey(command.key), result: summarize(keys) }, 'PREEMPT of our own key: the sender is not registered afterwards; other paths left as they are');
      return;
    }
    const aptpl = await this.ptplActive(session, sender);
    const restored = await this.repair(session, { why: 'missed-registration', paths: session.fanOutPaths().filter((p) => p !== sender), saKey: command.key, allTgPt: false, aptpl }, prOutActionName(command.action));
    // The device removed the registrations of the paths not reached as well.
    for (const p of session.map.paths) if (p.name !== sender && !restored.includes(p.name)) this.book.suspect(session.map.uuid, p.name);
    this.carrying(session.map, command.key, false, [sender, ...restored]);
  }

  /**
   * REGISTER AND IGNORE EXISTING KEY on each path of the repair (UNIT ATTENTION
   * retried), with an audit line per path. Logs, never fails; returns the
   * paths that took it.
   */
  private async repair(session: PathSession, repair: Repair, after: string): Promise<string[]> {
    if (repair.paths.length === 0) return [];
    const built = repairCommand(repair);
    const outcomes = await Promise.all(repair.paths.map((p) => session.runSettled(p, built.cdb, built.params)));
    outcomes.forEach((r) => audit(session.log, session.map, r.path, built, r, `${repair.why} after ${after}`));
    const failed = outcomes.filter((r) => r.kind !== 'answer' || r.status !== ScsiStatus.GOOD);
    const fields = { why: repair.why, after, key: formatReservationKey(repair.saKey), paths: repair.paths, results: outcomes.map(summarize) };
    if (failed.length === 0) session.log.info(fields, 'paths of the map re-registered');
    else session.log.warn(fields, 're-registering paths of the map failed on some paths; they keep their old registration');
    for (const r of failed) this.book.suspect(session.map.uuid, r.path);
    return outcomes.filter((r) => r.kind === 'answer' && r.status === ScsiStatus.GOOD).map((r) => r.path);
  }

  /** READ RESERVATION through the given paths first, then any other; undefined if nothing answered it. */
  private readReservation(session: PathSession, preferred: readonly string[]): Promise<ReservationDescriptor | null | undefined> {
    return this.readVia(session, preferred, PrInAction.READ_RESERVATION, parseReadReservation);
  }

  /** PR IN `action` through the given paths first, then any other, parsed; undefined if no path gave usable data. */
  private async readVia<T>(session: PathSession, preferred: readonly string[], action: number, parse: (data: Buffer) => T): Promise<T | undefined> {
    const order = [...preferred, ...session.order().filter((p) => !preferred.includes(p))];
    for (const path of order) {
      const r = await session.runSettled(path, prInCommand(action), null);
      if (r.kind !== 'answer') continue;
      if (r.status !== ScsiStatus.GOOD || r.data === null) continue;
      try {
        return parse(r.data);
      } catch (err) {
        session.log.warn({ path, err, action }, 'PR IN data unusable');
      }
    }
    return undefined;
  }

  /** PTPL_A from REPORT CAPABILITIES, so that re-registrations keep the device's APTPL state. */
  private async ptplActive(session: PathSession, path: string): Promise<boolean> {
    const r = await session.runSettled(path, prInCommand(PrInAction.REPORT_CAPABILITIES), null);
    const active = ptplOf(r);
    if (active !== null) return active;
    session.log.warn({ path, result: summarize(r) }, 'REPORT CAPABILITIES failed; re-registering with APTPL=0');
    return false;
  }

  // ---- used by PathSession -----------------------------------------------------

  /** @internal */
  async openPath(path: MapPath, log: Logger): Promise<number | PathResult> {
    if (this.pendingOpens.has(path.node)) {
      return unreachable(path.name, `open of ${path.node} from an earlier request has not returned yet`);
    }
    // O_NONBLOCK: no media checks in sd_open. O_NOFOLLOW: a symlink planted
    // at the node is never followed. libuv adds O_CLOEXEC itself.
    const opening = this.openFile(path.node, fsConstants.O_RDWR | fsConstants.O_NONBLOCK | fsConstants.O_NOFOLLOW);
    const tracked = opening.then(
      () => undefined,
      () => undefined,
    );
    this.pendingOpens.set(path.node, tracked);
    void tracked.then(() => this.pendingOpens.delete(path.node));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.openTimeoutMs);
      timer.unref();
    });
    try {
      const fd = await Promise.race([opening, timedOut]);
      if (fd === 'timeout') {
        // The open keeps running on its libuv thread; close whatever it returns.
        void opening.then(closeFd, () => undefined);
        return unreachable(path.name, `open of ${path.node} did not return within ${this.openTimeoutMs} ms`);
      }
      this.accessLogged.delete(path.node);
      // Only the block device sysfs names may receive the map's commands.
      const identity = this.identify(fd);
      const mismatch =
        !identity?.block ? `${path.node} is not a block device`
        : path.devno === null ? `sysfs names no device number for ${path.name}`
        : `${identity.major}:${identity.minor}` !== path.devno ? `${path.node} is device ${identity.major}:${identity.minor}, sysfs says ${path.devno}`
        : null;
      if (mismatch !== null) {
        closeFd(fd);
        return unreachable(path.name, mismatch);
      }
      return fd;
    } catch (err) {
      const code = errnoName(err);
      if (code === 'EACCES' || code === 'EPERM') {
        const first = !this.accessLogged.has(path.node);
        this.accessLogged.add(path.node);
        (first ? log.error.bind(log) : log.debug.bind(log))(
          { path: path.node, uid: process.getuid?.(), gid: process.getgid?.(), err },
          `cannot open a path of the multipath map: ${ACCESS_HINT}`,
        );
      }
      return unreachable(path.name, `open ${path.node}: ${code}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** @internal */
  runSgio(fd: number, cdb: Buffer, direction: 'in' | 'out', params: Buffer | null): Promise<native.SgioResult> {
    return direction === 'in'
      ? this.sgio(fd, cdb, native.SgDirection.FROM_DEV, MAX_TRANSFER, this.options.timeoutMs)
      : this.sgio(fd, cdb, native.SgDirection.TO_DEV, params ?? Buffer.alloc(0), this.options.timeoutMs);
  }
}

/**
 * One request on one map: opens each path once, on first use, and closes them
 * all at the end. A path that failed at the transport level is not used again
 * within the request.
 */
class PathSession {
  private readonly fds = new Map<string, Promise<number | PathResult>>();
  private readonly broken = new Map<string, PathResult>();
  private readonly byName: Map<string, MapPath>;

  /**
   * @param busy paths being re-registered: not used by this request
   * @param background the daemon's own work: path failures are logged at debug
   *   (the path is retried every poll while it is down)
   */
  constructor(
    private readonly router: MultipathRouter,
    readonly map: MapInfo,
    readonly log: Logger,
    private readonly busy: ReadonlySet<string> = new Set(),
    private readonly background = false,
  ) {
    this.byName = new Map(map.paths.map((p) => [p.name, p]));
  }

  /** Paths for one-path commands, best first: running, stateless, then blocked ones. */
  order(): string[] {
    const rank: Record<PathUse, number> = { first: 0, later: 1, 'last-resort': 2, never: 3 };
    return this.map.paths.filter((p) => p.use !== 'never' && !this.busy.has(p.name)).sort((a, b) => rank[a.use] - rank[b.use]).map((p) => p.name);
  }

  /** Paths a fan-out sends to: not the blocked ones, it would wait for them. */
  fanOutPaths(): string[] {
    return this.map.paths.filter((p) => (p.use === 'first' || p.use === 'later') && !this.busy.has(p.name)).map((p) => p.name);
  }

  /** The first of the given paths on each SCSI host (paths of unknown host all kept). */
  onePerHost(names: readonly string[]): string[] {
    const hosts = new Set<number>();
    return names.filter((name) => {
      const host = this.byName.get(name)?.host ?? null;
      if (host === null) return true;
      if (hosts.has(host)) return false;
      hosts.add(host);
      return true;
    });
  }

  /** The paths a command of this kind does not try, as failures (they count as not reached). */
  skipped(kind: 'single' | 'fan-out' = 'single'): PathResult[] {
    const notUsed = this.map.paths
      .filter((p) => !this.busy.has(p.name) && (p.use === 'never' || (kind === 'fan-out' && p.use === 'last-resort')))
      .map((p) => unreachable(p.name, `not used: device state ${p.state ?? 'unknown'}`));
    return [...notUsed, ...[...this.busy].map((name) => unreachable(name, 'not used: being re-registered'))];
  }

  /** Sends one command through one path. Never throws. */
  async run(name: string, cdb: Buffer, direction: 'in' | 'out', params: Buffer | null = null): Promise<PathResult> {
    const broken = this.broken.get(name);
    if (broken) return broken.kind === 'failure' ? { ...broken, mayHaveExecuted: false } : broken;
    const path = this.byName.get(name);
    if (!path) return unreachable(name, 'not a path of this map');
    let pending = this.fds.get(name);
    if (!pending) {
      pending = this.router.openPath(path, this.log);
      this.fds.set(name, pending);
    }
    const fd = await pending;
    if (typeof fd !== 'number') {
      this.broken.set(name, fd);
      return fd;
    }
    let result: PathResult;
    try {
      const outcome = await this.router.runSgio(fd, cdb, direction, params);
      result = classifyOutcome(name, outcome, direction === 'in' ? MAX_TRANSFER : (params?.length ?? 0), outcome.data);
    } catch (err) {
      result = unreachable(name, `SG_IO could not be issued: ${errnoName(err)}`);
    }
    if (result.kind === 'failure') {
      this.broken.set(name, result);
      this.router.pathFailed(this.map, name);
      const fields = { path: name, reason: result.reason, cdb: cdb.subarray(0, 10).toString('hex') };
      if (this.background) this.log.debug(fields, 'path failed');
      else this.log.warn(fields, 'path failed; using the other paths of the map');
    }
    return result;
  }

  /** run() for the daemon's own commands (PR IN when params is null), retrying UNIT ATTENTION. */
  async runSettled(name: string, cdb: Buffer, params: Buffer | null): Promise<PathResult> {
    let result = await this.run(name, cdb, params === null ? 'in' : 'out', params);
    for (let i = 0; i < UNIT_ATTENTION_RETRIES && isUnitAttention(result); i++) {
      result = await this.run(name, cdb, params === null ? 'in' : 'out', params);
    }
    return result;
  }

  note(results: readonly PathResult[]): void {
    if (this.log.isLevelEnabled('debug')) this.log.debug({ results: results.map(summarize) }, 'multipath command');
  }

  /**
   * Closes every path descriptor once its open has returned. Called when the
   * request is answered: no SG_IO of this session is running any more (each
   * run() awaited its own), so no worker thread still uses them.
   */
  close(): void {
    for (const pending of this.fds.values()) void pending.then((fd) => typeof fd === 'number' && closeFd(fd));
  }
}

function openFd(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => openCallback(path, flags, (err, fd) => (err ? reject(err) : resolve(fd))));
}

function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already gone: nothing to release.
  }
}

function answerReply(answer: PathAnswer, allocationLength: number): CommandResult {
  return {
    status: answer.status,
    sense: answer.sense,
    data: answer.data ? answer.data.subarray(0, Math.min(answer.data.length, allocationLength)) : null,
  };
}

/** PTPL_A from a REPORT CAPABILITIES result; null when it did not answer with usable data. */
function ptplOf(r: PathResult): boolean | null {
  if (r.kind !== 'answer' || r.status !== ScsiStatus.GOOD || r.data === null) return null;
  try {
    return parsePtplActive(r.data);
  } catch {
    return null;
  }
}

function answeredPaths(results: readonly PathResult[]): string[] {
  return results.filter((r) => r.kind === 'answer').map((r) => r.path);
}

function summarize(r: PathResult): Record<string, unknown> {
  if (r.kind === 'failure') return { path: r.path, failure: r.reason };
  const out: Record<string, unknown> = { path: r.path, status: r.status };
  if (r.status === ScsiStatus.CHECK_CONDITION) out['sense'] = r.sense.subarray(0, 18).toString('hex');
  return out;
}

function everyMs(ms: number, tick: () => void): () => void {
  const timer = setInterval(tick, ms);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * An audit-trail line for a PR OUT the daemon sent on its own through one path
 * (the connection writes the guest's; same fields, plus the path and why).
 */
function audit(log: Logger, map: MapInfo, path: string, built: BuiltOut, result: PathResult, why: string): void {
  const command = describePrCommand(built.cdb, built.params);
  const status = result.kind === 'answer' ? statusName(result.status) : 'path failure';
  const fields = { ...command, status, origin: 'daemon', why, mpath: map.name, dm: map.devno, dev: path, ...(result.kind === 'failure' ? { failure: result.reason } : {}) };
  // Levels as for the guest's commands: a conflict is an answer, not a failure.
  const answered = result.kind === 'answer' && (result.status === ScsiStatus.GOOD || result.status === ScsiStatus.RESERVATION_CONFLICT);
  (answered ? log.info.bind(log) : log.warn.bind(log))(fields, `${command.op} ${command.action}: ${status} (by the daemon on path ${path}: ${why})`);
}
