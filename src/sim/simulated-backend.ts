import { fstatSync, lstatSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Backend, BackendRequest } from '../backend/backend.js';
import type { CommandResult } from '../protocol/response.js';
import { fixedSense, Sense } from '../scsi/sense.js';
import { ScsiStatus } from '../scsi/status.js';
import { ConfigError, parseSimulationConfig, type SimulationConfig } from './config.js';
import type { Nexus } from './nexus.js';
import { PrEngine } from './pr-engine.js';
import { deleteLunState, loadLunState, saveLunState } from './state-store.js';
import { parseInitiatorName } from '../scsi/transport-id.js';

const S_IFMT = 0o170000;
const S_IFBLK = 0o060000;
const S_IFCHR = 0o020000;

/**
 * Which device a descriptor reaches: device nodes by st_rdev (any node for
 * the same device, however opened), everything else by st_dev + st_ino.
 */
export function deviceIdentity(st: { mode: number; dev: number; ino: number; rdev: number }): string {
  const type = st.mode & S_IFMT;
  return type === S_IFBLK || type === S_IFCHR ? `rdev-${st.rdev}` : `file-${st.dev}-${st.ino}`;
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

/** Without a configured stateDir: the system location as root, the user's state directory otherwise. */
export function defaultStateDir(): string {
  if (process.getuid?.() === 0) return '/var/lib/pr-helper';
  return join(process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'pr-helper');
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

/** Initiator name for a connecting process in the embedded default configuration. */
export function processInitiatorName(pid: number): string {
  return `iqn.2008-11.org.linux-kvm:pr-helper.pid-${pid}`;
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

  private constructor(
    private readonly config: SimulationConfig | null,
    private readonly stateDir: string,
    private readonly log: Logger,
  ) {}

  /** `source` names the configuration file in error messages. */
  static async create(config: SimulationConfig | null, log: Logger, source = 'config'): Promise<SimulatedBackend> {
    const backend = new SimulatedBackend(config, config?.stateDir ?? defaultStateDir(), log);
    const unsafe = unsafeStateDir(backend.stateDir);
    if (unsafe !== null) throw new ConfigError(`stateDir ${backend.stateDir}: ${unsafe}; refusing to read PR state from it`);
    for (const [l, lunConfig] of (config?.luns ?? []).entries()) {
      const lun = await backend.openLun(lunConfig.name, lunConfig.targetPorts);
      for (const [p, path] of lunConfig.paths.entries()) {
        const where = `config ${source}: luns[${l}].paths[${p}].path`;
        let identity: string;
        try {
          identity = deviceIdentity(statSync(path.path));
        } catch (err) {
          // Node's message ends with ", stat '<path>'": name the path once, up front.
          throw new ConfigError(`${where}: ${path.path}: ${(err as Error).message.split(',')[0]}`);
        }
        if (backend.routes.has(identity)) throw new ConfigError(`${where}: ${path.path} is the same file as another path`);
        backend.routes.set(identity, { lun, nexus: { initiator: path.initiator, targetPort: path.targetPort } });
      }
    }
    return backend;
  }

  async execute(request: BackendRequest): Promise<CommandResult> {
    const identity = deviceIdentity(fstatSync(request.fd));
    const route = this.routes.get(identity) ?? (this.config ? null : await this.routeOnDemand(identity));
    if (!route) return { status: ScsiStatus.CHECK_CONDITION, sense: fixedSense(Sense.LOGICAL_UNIT_NOT_SUPPORTED) };
    const nexus = route.nexus ?? { initiator: parseInitiatorName(processInitiatorName(request.peer.pid)), targetPort: 1 };
    const { lun } = route;
    const result = lun.engine.execute(nexus, request.cdb, request.params);
    if (result.persistentStateChanged) {
      const snapshot = lun.engine.snapshot();
      const write = lun.saving.then(() =>
        snapshot.aptpl ? saveLunState(this.stateDir, lun.name, snapshot) : deleteLunState(this.stateDir, lun.name),
      );
      lun.saving = write.catch(() => undefined);
      try {
        await write;
      } catch (err) {
        // The change stays in effect for this run (as on LIO), but the client
        // must learn that it will not survive a restart.
        this.log.error({ err, lun: lun.name, stateDir: this.stateDir }, 'cannot persist PR state');
        return { status: ScsiStatus.CHECK_CONDITION, sense: fixedSense(Sense.INTERNAL_TARGET_FAILURE) };
      }
    }
    return result;
  }

  async close(): Promise<void> {
    const luns = await Promise.all(this.luns.values());
    await Promise.all(luns.map((lun) => lun.saving));
  }

  /** Embedded default: every distinct file or device is a logical unit of its own. */
  private async routeOnDemand(identity: string): Promise<Route> {
    const route = { lun: await this.openLun(identity, [1]), nexus: null };
    this.routes.set(identity, route);
    return route;
  }

  private openLun(name: string, targetPorts: readonly number[]): Promise<Lun> {
    let lun = this.luns.get(name);
    if (!lun) {
      lun = this.loadLun(name, targetPorts);
      this.luns.set(name, lun);
    }
    return lun;
  }

  private async loadLun(name: string, targetPorts: readonly number[]): Promise<Lun> {
    const persisted = await loadLunState(this.stateDir, name, this.log);
    // No power-on UNIT ATTENTION is queued: on a real disk the guest's first
    // non-PR command (which never reaches the helper) consumes it.
    const engine = persisted ? PrEngine.restore(persisted, { targetPorts }) : new PrEngine({ targetPorts });
    if (persisted) this.log.info({ lun: name, registrations: persisted.registrations.length }, 'restored APTPL state');
    return { name, engine, saving: Promise.resolve() };
  }
}

/** `--simulate` with a config path, or '' for the embedded default. */
export async function createSimulatedBackend(configPath: string, log: Logger): Promise<Backend> {
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
  return SimulatedBackend.create(config, log, configPath);
}
