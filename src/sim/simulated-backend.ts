import { constants as fsConstants, fstatSync, lstatSync, readFileSync, statSync, type Stats } from 'node:fs';
import { access } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Backend, BackendRequest } from '../backend/backend.js';
import type { CommandResult } from '../protocol/response.js';
import { fixedSense, Sense } from '../scsi/sense.js';
import { ScsiStatus } from '../scsi/status.js';
import { ConfigError, parseSimulationConfig, type SimulationConfig } from './config.js';
import type { Nexus } from './nexus.js';
import { PrEngine } from './pr-engine.js';
import { TARGET_PROFILES } from './target-profile.js';
import { deleteLunState, loadLunState, saveLunState } from './state-store.js';
import { parseInitiatorName, type TransportId } from '../scsi/transport-id.js';

/**
 * Which device a descriptor reaches: device nodes by type and st_rdev (any
 * node for the same device, however opened; a character device never reaches
 * a block device's unit), regular files by st_dev + st_ino + birth time, so
 * that a new file reusing a deleted file's inode is a new unit. Anything else
 * (pipes, sockets, directories) has none.
 */
export function deviceIdentity(st: Pick<Stats, 'dev' | 'ino' | 'rdev' | 'birthtimeMs' | 'isFile' | 'isBlockDevice' | 'isCharacterDevice'>): string | null {
  if (st.isBlockDevice()) return `blk-${st.rdev}`;
  if (st.isCharacterDevice()) return `chr-${st.rdev}`;
  if (st.isFile()) return `file-${st.dev}-${st.ino}-${st.birthtimeMs}`;
  return null;
}

interface Lun {
  readonly name: string;
  readonly engine: PrEngine;
  /** Persistence writes of this LUN, in command order. */
  saving: Promise<void>;
}

interface Route {
  readonly lun: Lun;
  /** Fixed by the configuration; null: the connecting process is the initiator. */
  readonly nexus: Nexus | null;
}

/**
 * Why PR state in `dir` could have been written by someone else, or null:
 * it must belong to us and be writable by nobody else (a missing directory
 * is created 0700 on first use).
 */
function unsafeStateDir(dir: string): string | null {
  let st;
  try {
    st = lstatSync(dir);
  } catch {
    return null;
  }
  if (!st.isDirectory()) return 'not a directory';
  if (st.uid !== process.geteuid!()) return `it belongs to uid ${st.uid}`;
  if ((st.mode & 0o022) !== 0) return `it is writable by others (mode 0${(st.mode & 0o7777).toString(8)})`;
  return null;
}

/**
 * Initiator name for a connecting process in the embedded default
 * configuration: its pid and start time (/proc/PID/stat field 22), so that a
 * process reusing a dead one's pid does not inherit its registrations.
 */
export function processInitiatorName(pid: number, procRoot = '/proc'): string {
  let started = '0';
  try {
    const stat = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
    started = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '0';
  } catch {
    // Gone already: its commands are moot, any name will do.
  }
  return `iqn.2008-11.org.linux-kvm:pr-helper.pid-${pid}.${started}`;
}

export interface SimulationLimits {
  /** Embedded default: logical units made on demand; beyond, idle ones without state are dropped, else LOGICAL UNIT NOT SUPPORTED. */
  readonly maxLuns: number;
}

/**
 * The simulated shared disk. Each descriptor is routed to a logical unit and
 * an I_T nexus; the PR engine decides; APTPL state is written before the
 * command is answered, so an acknowledged change survives kill -9.
 */
export class SimulatedBackend implements Backend {
  readonly name = 'simulated';
  /** Opening a LUN reads its state file: concurrent first commands must share one engine. */
  private readonly luns = new Map<string, Promise<Lun>>();
  private readonly routes = new Map<string, Route>();
  /**
   * The embedded default's initiator of each connection, keyed by the
   * connection's peer credentials (one object per connection, fixed at
   * connect): /proc is read once per connection, not per request.
   */
  private readonly processInitiators = new WeakMap<BackendRequest['peer'], TransportId>();

  /** Logged once: APTPL asked for where no stateDir is configured. */
  private noStateDirLogged = false;

  private constructor(
    private readonly config: SimulationConfig | null,
    /** Only a configured directory: the embedded default never writes files. */
    private readonly stateDir: string | null,
    private readonly log: Logger,
    private readonly limits: SimulationLimits,
  ) {}

  private get profile() {
    return TARGET_PROFILES[this.config?.profile ?? 'spc4'];
  }

  /** `source` names the configuration file in error messages. */
  static async create(config: SimulationConfig | null, log: Logger, source = 'config', limits: SimulationLimits = { maxLuns: 1024 }): Promise<SimulatedBackend> {
    const backend = new SimulatedBackend(config, config?.stateDir ?? null, log, limits);
    const unsafe = backend.stateDir === null ? null : unsafeStateDir(backend.stateDir);
    if (unsafe !== null) throw new ConfigError(`stateDir ${backend.stateDir}: ${unsafe}; refusing to read PR state from it`);
    for (const [l, lunConfig] of (config?.luns ?? []).entries()) {
      const lun = await backend.openLun(lunConfig.name, lunConfig.targetPorts);
      for (const [p, path] of lunConfig.paths.entries()) {
        const where = `config ${source}: luns[${l}].paths[${p}].path`;
        let identity: string | null;
        try {
          identity = deviceIdentity(statSync(path.path));
        } catch (err) {
          // Node's message ends with ", stat '<path>'": name the path once, up front.
          throw new ConfigError(`${where}: ${path.path}: ${(err as Error).message.split(',')[0]}`);
        }
        if (identity === null) throw new ConfigError(`${where}: ${path.path} is neither a regular file nor a device`);
        if (backend.routes.has(identity)) throw new ConfigError(`${where}: ${path.path} is the same file as another path`);
        backend.routes.set(identity, { lun, nexus: { initiator: path.initiator, targetPort: path.targetPort } });
      }
    }
    return backend;
  }

  async execute(request: BackendRequest): Promise<CommandResult> {
    const st = fstatSync(request.fd);
    const identity = deviceIdentity(st);
    const route = identity === null ? null : (this.routes.get(identity) ?? (this.config || st.isCharacterDevice() ? null : await this.routeOnDemand(identity)));
    if (!route) return { status: ScsiStatus.CHECK_CONDITION, sense: fixedSense(Sense.LOGICAL_UNIT_NOT_SUPPORTED) };
    const nexus = route.nexus ?? { initiator: this.processInitiator(request.peer), targetPort: 1 };
    const { lun } = route;
    const result = lun.engine.execute(nexus, request.cdb, request.params);
    if (result.persistentStateChanged) {
      const snapshot = lun.engine.snapshot();
      const stateDir = this.stateDir;
      if (stateDir === null) {
        if (!snapshot.aptpl) return result;
        // Persisting where nobody configured it would let any client fill a
        // directory of ours: the change holds for this run only, and the
        // client learns so, as when a write fails.
        if (!this.noStateDirLogged) this.log.warn({ lun: lun.name }, 'APTPL requested but no stateDir is configured; the state will not survive a restart');
        this.noStateDirLogged = true;
        return { status: ScsiStatus.CHECK_CONDITION, sense: fixedSense(Sense.INTERNAL_TARGET_FAILURE) };
      }
      const write = lun.saving.then(async () => {
        // LIO does not create <db_root>/pr; its write fails when the directory is missing.
        if (!this.profile.persistence.createsDirectory) await access(stateDir, fsConstants.W_OK);
        await (snapshot.aptpl ? saveLunState(stateDir, lun.name, snapshot) : deleteLunState(stateDir, lun.name));
      });
      lun.saving = write.catch(() => undefined);
      try {
        await write;
      } catch (err) {
        // The change stays in effect for this run (as on LIO), but the client
        // must learn that it will not survive a restart, unless the profile's
        // target keeps quiet about it.
        this.log.error({ err, lun: lun.name, stateDir: this.stateDir }, 'cannot persist PR state');
        if (result.persistFailure !== null) return { status: ScsiStatus.CHECK_CONDITION, sense: fixedSense(result.persistFailure) };
      }
    }
    return result;
  }

  async close(): Promise<void> {
    const luns = await Promise.all(this.luns.values());
    await Promise.all(luns.map((lun) => lun.saving));
  }

  /**
   * Embedded default: every distinct regular file or block device is a
   * logical unit of its own, up to limits.maxLuns; then a unit that holds no
   * registration or reservation makes room (dropping it is invisible but
   * for its PRgeneration), or there is none: null.
   */
  private async routeOnDemand(identity: string): Promise<Route | null> {
    if (this.routes.size >= this.limits.maxLuns && !this.evictIdleLun()) return null;
    const route = { lun: await this.openLun(identity, [1]), nexus: null };
    this.routes.set(identity, route);
    return route;
  }

  private evictIdleLun(): boolean {
    for (const [identity, route] of this.routes) {
      const state = route.lun.engine.snapshot();
      if (state.registrations.length > 0 || state.reservation !== null) continue;
      this.routes.delete(identity);
      this.luns.delete(route.lun.name);
      return true;
    }
    return false;
  }

  private openLun(name: string, targetPorts: readonly number[]): Promise<Lun> {
    let lun = this.luns.get(name);
    if (!lun) {
      lun = this.loadLun(name, targetPorts);
      this.luns.set(name, lun);
    }
    return lun;
  }

  private processInitiator(peer: BackendRequest['peer']): TransportId {
    let initiator = this.processInitiators.get(peer);
    if (!initiator) {
      initiator = parseInitiatorName(processInitiatorName(peer.pid));
      this.processInitiators.set(peer, initiator);
    }
    return initiator;
  }

  private async loadLun(name: string, targetPorts: readonly number[]): Promise<Lun> {
    const persisted = this.stateDir === null ? null : await loadLunState(this.stateDir, name, this.log);
    // No power-on UNIT ATTENTION is queued: on a real disk the guest's first
    // non-PR command (which never reaches the helper) consumes it.
    const options = { targetPorts, profile: this.profile.name };
    const engine = persisted ? PrEngine.restore(persisted, options) : new PrEngine(options);
    if (persisted) this.log.info({ lun: name, registrations: persisted.registrations.length }, 'restored APTPL state');
    return { name, engine, saving: Promise.resolve() };
  }
}

/** `--simulate` with a config path, or '' for the embedded default. */
export async function createSimulatedBackend(configPath: string, log: Logger, limits?: SimulationLimits): Promise<Backend> {
  let config: SimulationConfig | null = null;
  if (configPath !== '') {
    let text: string;
    try {
      text = readFileSync(configPath, 'utf8');
    } catch (err) {
      throw new ConfigError(`config ${configPath}: ${(err as Error).message}`);
    }
    config = parseSimulationConfig(text, configPath);
  }
  return SimulatedBackend.create(config, log, configPath, limits);
}
