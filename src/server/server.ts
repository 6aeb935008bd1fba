import { closeSync, openSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Backend } from '../backend/backend.js';
import { FdStream } from '../io/fd-stream.js';
import { RepeatedLines } from '../log/repeated-lines.js';
import * as native from '../native/binding.js';
import { DeviceIdentities } from '../observe/device-identity.js';
import { Monitor } from '../observe/monitor.js';
import { identifyPeer } from '../observe/peer-identity.js';
import { Connection, type ConnectionView } from './connection.js';

export interface AccessPolicy {
  /** When non-empty, only peers whose uid is listed (or whose gid is in allowGids) are served. */
  readonly allowUids: readonly number[];
  readonly allowGids: readonly number[];
}

export interface ServerOptions {
  readonly listenFd: number;
  readonly backend: Backend;
  readonly log: Logger;
  readonly access?: AccessPolicy;
  /** Connections beyond this are closed right after accept, with a log line. */
  readonly maxConnections?: number;
  /** Connections of one peer uid beyond this are closed likewise. */
  readonly maxConnectionsPerUid?: number;
  /** See ConnectionContext.frameTimeoutMs; none by default. */
  readonly frameTimeoutMs?: number;
  /** Rate limit for lines a peer can repeat; by default one of its own on `log`. */
  readonly repeated?: RepeatedLines;
  /** Names devices in log lines; by default from the real sysfs. */
  readonly devices?: DeviceIdentities;
  /** Where procfs is mounted, for the peers' VM names (tests). */
  readonly procRoot?: string;
  /** Counts connections and commands; by default one of its own. */
  readonly monitor?: Monitor;
}

const ACCEPT_RETRY_MS = 250;
/**
 * Connections accepted per readiness callback. Clients that connect as fast
 * as we accept would otherwise keep the loop going forever: the accepted
 * connections' reads never run, they pile up to --max-connections and every
 * later client is refused. The watch is level-triggered, so whatever is left
 * in the backlog is accepted on the next turn, after the other connections'
 * I/O.
 */
const ACCEPT_BATCH = 32;

/**
 * Accepts connections and runs each as its own Connection. Requests on one
 * connection are sequential; connections are independent of each other.
 */
export class HelperServer {
  private readonly connections = new Set<Connection>();
  private readonly finished = new Set<Promise<void>>();
  private watch: native.PollHandle | null = null;
  private acceptRetry: NodeJS.Timeout | null = null;
  private accepting = false;
  private nextId = 1;
  private readonly perUid = new Map<number, number>();
  /**
   * Held open to be given up when accept() fails for want of descriptors,
   * so that the pending connection can be accepted and closed instead of
   * staying queued (with every later one) until a descriptor frees up.
   */
  private reserveFd: number | null = null;
  private readonly repeated: RepeatedLines;
  private readonly devices: DeviceIdentities;
  readonly monitor: Monitor;

  constructor(private readonly options: ServerOptions) {
    this.repeated = options.repeated ?? new RepeatedLines(options.log);
    this.devices = options.devices ?? new DeviceIdentities();
    this.monitor = options.monitor ?? new Monitor();
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Commands executing now, and for how long the oldest has been (0 when none). */
  inFlight(now = process.hrtime.bigint()): { count: number; oldestSeconds: number } {
    let count = 0;
    let oldest = now;
    for (const conn of this.connections) {
      const since = conn.executingSince;
      if (since === null) continue;
      count++;
      if (since < oldest) oldest = since;
    }
    return { count, oldestSeconds: Number(now - oldest) / 1e9 };
  }

  /** Every open connection with its peer and the command it executes. */
  connectionViews(now = process.hrtime.bigint()): ConnectionView[] {
    return [...this.connections].map((conn) => conn.view(now));
  }

  start(): void {
    this.accepting = true;
    this.reserveFd = openSync('/dev/null', 'r');
    this.watch = native.poll(this.options.listenFd, native.PollEvent.READABLE, () => this.acceptPending());
  }

  /**
   * Stops accepting, drops idle connections, lets executing commands reply,
   * then resolves. The listening descriptor is closed; unlinking is the caller's.
   */
  async stop(): Promise<void> {
    if (!this.accepting) return;
    this.accepting = false;
    if (this.acceptRetry) clearTimeout(this.acceptRetry);
    if (this.watch) native.pollClose(this.watch);
    this.watch = null;
    closeSync(this.options.listenFd);
    if (this.reserveFd !== null) closeSync(this.reserveFd);
    this.reserveFd = null;
    for (const conn of this.connections) conn.closeIfIdle();
    await Promise.all(this.finished);
  }

  private acceptPending(): void {
    for (let n = 0; n < ACCEPT_BATCH; n++) {
      let accepted: native.AcceptedConnection | null;
      try {
        accepted = native.accept(this.options.listenFd);
      } catch (err) {
        if (this.shedWithReserve(err)) continue;
        this.pauseAccepting(err as Error);
        return;
      }
      if (!accepted) return;
      this.admit(accepted);
    }
  }

  /** Out of descriptors: accepts one pending connection on the reserve and closes it. */
  private shedWithReserve(err: unknown): boolean {
    if (this.reserveFd === null || !(native.isSystemError(err, 'EMFILE') || native.isSystemError(err, 'ENFILE'))) return false;
    closeSync(this.reserveFd);
    this.reserveFd = null;
    let shed: native.AcceptedConnection | null = null;
    try {
      shed = native.accept(this.options.listenFd);
    } catch {
      // Still none: pauseAccepting takes over.
    }
    if (shed) {
      closeSync(shed.fd);
      this.monitor.connectionRefused('connection-limit');
      this.repeated.write(this.options.log, 'warn', shed, { peer: { pid: shed.pid, uid: shed.uid, gid: shed.gid } }, 'out of descriptors; connection closed');
    }
    try {
      this.reserveFd = openSync('/dev/null', 'r');
    } catch {
      // Taken by then; the next shortage pauses accepting instead.
    }
    return shed !== null;
  }

  /**
   * Out of descriptors (EMFILE/ENFILE) or another accept failure: the pending
   * connection stays queued and the socket stays readable, so polling on
   * would spin. Retry after a pause; log once per pause.
   */
  private pauseAccepting(err: Error): void {
    if (!this.watch || this.acceptRetry) return;
    this.options.log.error({ code: (err as native.SystemError).code, retryMs: ACCEPT_RETRY_MS }, `accept failed: ${err.message}`);
    native.pollUpdate(this.watch, 0);
    this.acceptRetry = setTimeout(() => {
      this.acceptRetry = null;
      if (this.watch) native.pollUpdate(this.watch, native.PollEvent.READABLE);
    }, ACCEPT_RETRY_MS);
  }

  private admit({ fd, ...peer }: native.AcceptedConnection): void {
    const id = this.nextId++;
    const procRoot = this.options.procRoot;
    if (!this.allowed(peer)) {
      const log = this.options.log.child({ conn: id });
      this.monitor.connectionRefused('allow-list');
      this.repeated.write(log, 'warn', peer, () => ({ peer, ...identifyPeer(peer.pid, procRoot) }), 'peer not in the allow list; connection closed');
      closeSync(fd);
      return;
    }
    const max = this.options.maxConnections;
    if (max !== undefined && this.connections.size >= max) {
      const log = this.options.log.child({ conn: id });
      this.monitor.connectionRefused('connection-limit');
      this.repeated.write(log, 'warn', peer, () => ({ peer, ...identifyPeer(peer.pid, procRoot), max }), 'connection limit reached; connection closed');
      closeSync(fd);
      return;
    }
    const ofUid = this.perUid.get(peer.uid) ?? 0;
    const maxOfUid = this.options.maxConnectionsPerUid;
    if (maxOfUid !== undefined && ofUid >= maxOfUid) {
      const log = this.options.log.child({ conn: id });
      this.monitor.connectionRefused('connection-limit');
      this.repeated.write(log, 'warn', peer, () => ({ peer, ...identifyPeer(peer.pid, procRoot), max: maxOfUid }), 'connection limit of this uid reached; connection closed');
      closeSync(fd);
      return;
    }
    this.perUid.set(peer.uid, ofUid + 1);
    this.monitor.connectionAccepted();
    // Who the peer is goes into every line of the connection; /proc is read once, here.
    const identity = identifyPeer(peer.pid, procRoot);
    const log = this.options.log.child({ conn: id, peer, ...identity });
    this.repeated.write(log, 'info', peer, {}, 'connection opened');
    const conn = new Connection(
      new FdStream(fd),
      peer,
      {
        backend: this.options.backend,
        accepting: () => this.accepting,
        repeated: this.repeated,
        devices: this.devices,
        monitor: this.monitor,
        frameTimeoutMs: this.options.frameTimeoutMs ?? null,
      },
      log,
      { conn: id, ...identity },
    );
    this.connections.add(conn);
    const done: Promise<void> = conn.run().finally(() => {
      this.connections.delete(conn);
      const left = this.perUid.get(peer.uid)! - 1;
      if (left === 0) this.perUid.delete(peer.uid);
      else this.perUid.set(peer.uid, left);
      this.finished.delete(done);
    });
    this.finished.add(done);
  }

  private allowed(peer: native.PeerCredentials): boolean {
    const access = this.options.access;
    if (!access || (access.allowUids.length === 0 && access.allowGids.length === 0)) return true;
    return access.allowUids.includes(peer.uid) || access.allowGids.includes(peer.gid);
  }
}
