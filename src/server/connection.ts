import { closeSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Backend, BackendResult } from '../backend/backend.js';
import type { FdStream } from '../io/fd-stream.js';
import type { RepeatedLines } from '../log/repeated-lines.js';
import * as native from '../native/binding.js';
import type { DeviceFields, DeviceIdentities } from '../observe/device-identity.js';
import type { Monitor } from '../observe/monitor.js';
import type { PeerFields } from '../observe/peer-identity.js';
import { SUPPORTED_FEATURES } from '../protocol/constants.js';
import type { PrRequest } from '../protocol/request.js';
import { CloseReason, RequestParser } from '../protocol/request-parser.js';
import { encodeHandshake, encodeResponse } from '../protocol/response.js';
import { failureKey, outcomeLevel, outcomeLine } from '../observe/command-outcome.js';
import { describePrCommand, describeSense, statusName } from '../scsi/pr-describe.js';
import { fixedSense, Sense } from '../scsi/sense.js';
import { ScsiStatus } from '../scsi/status.js';
import { accessRefusal } from './descriptor-rights.js';

export interface ConnectionContext {
  readonly backend: Backend;
  /** False once the daemon stops: no new request is read (the `state == RUNNING` loop of QEMU's prh_co_entry). */
  readonly accepting: () => boolean;
  /** Lines a peer can cause again and again go through this rate limit. */
  readonly repeated: RepeatedLines;
  /** Names the device behind a request's descriptor in its log lines. */
  readonly devices: DeviceIdentities;
  /** Counts every completed command. */
  readonly monitor: Monitor;
  /**
   * How long the handshake, and the rest of a request once its first byte
   * came, may take; between requests a connection may stay idle forever, as
   * QEMU's does from start-up to the guest's first PR command.
   */
  readonly frameTimeoutMs: number | null;
}

/** A connection as `pr-helper status` shows it. */
export interface ConnectionView extends PeerFields {
  readonly conn: number;
  readonly peer: native.PeerCredentials;
  readonly openedAt: string;
  readonly requests: number;
  /** The command being executed, if any. */
  readonly executing: ({ readonly op: string; readonly action: string; readonly seconds: number } & DeviceFields) | null;
}

/**
 * One client connection, in the order of QEMU scsi/qemu-pr-helper.c
 * prh_co_entry: handshake, then read request -> execute -> reply, until the
 * client goes away, breaks a framing rule (prh_read, prh_read_request; see
 * CloseReason) or the daemon stops. Nothing a client sends can throw
 * out of run(); every received descriptor is closed on every path.
 */
export class Connection {
  private readonly parser = new RequestParser();
  private readonly openedAt = new Date();
  private executing = false;
  private requests = 0;
  /** The command being executed and since when (hrtime), for status and the in-flight metrics. */
  private current: PrRequest | null = null;
  private currentSince = 0n;
  private frameTimer: NodeJS.Timeout | null = null;
  private timedOut = false;

  constructor(
    private readonly stream: FdStream,
    readonly peer: native.PeerCredentials,
    private readonly ctx: ConnectionContext,
    private readonly log: Logger,
    /** The connection number and what /proc said about the peer. */
    private readonly about: { readonly conn: number } & PeerFields,
  ) {}

  get isExecuting(): boolean {
    return this.executing;
  }

  /** Since when (hrtime) the current command executes, or null when idle. */
  get executingSince(): bigint | null {
    return this.current ? this.currentSince : null;
  }

  view(now: bigint): ConnectionView {
    const current = this.current;
    const executing = current
      ? {
          ...describePrCommand(current.cdb, current.params),
          seconds: Number(now - this.currentSince) / 1e9,
          ...this.ctx.devices.of(current.fd),
        }
      : null;
    return { ...this.about, peer: this.peer, openedAt: this.openedAt.toISOString(), requests: this.requests, executing };
  }

  async run(): Promise<void> {
    const opened = process.hrtime.bigint();
    let end = 'client closed the connection';
    try {
      end = await this.serve();
    } catch (err) {
      end = 'internal error';
      this.log.error({ err }, 'connection failed');
    } finally {
      this.stream.close();
      const ms = Number(process.hrtime.bigint() - opened) / 1e6;
      this.ctx.repeated.write(this.log, 'info', this.peer, { requests: this.requests, ms, end }, 'connection closed');
    }
  }

  /** Drops the connection unless a command is executing (that one replies first). */
  closeIfIdle(): void {
    if (!this.executing) this.stream.close();
  }

  private async serve(): Promise<string> {
    try {
      await this.stream.write(encodeHandshake(SUPPORTED_FEATURES));
    } catch {
      // A peer that hangs up before the handshake is dropped silently, as prh_co_entry does.
      return 'client left before the handshake';
    }
    const handshake = await this.readUntilStep();
    if (handshake.kind === 'close') return this.dropped(handshake.reason, handshake.detail);

    while (this.ctx.accepting()) {
      const next = await this.readUntilStep();
      if (next.kind === 'close') return this.dropped(next.reason, next.detail);
      if (next.kind === 'lost-fd') {
        this.ctx.repeated.write(this.log, 'warn', this.peer, {}, 'descriptor of a request lost (daemon out of descriptors?); replying BUSY');
        try {
          await this.stream.write(encodeResponse(next.request, { status: ScsiStatus.BUSY }));
        } catch {
          return 'reply could not be written';
        }
        continue;
      }
      if (next.kind !== 'request') continue;
      const reply = await this.execute(next.request);
      try {
        await this.stream.write(reply);
      } catch (err) {
        if (!this.stream.isClosed) this.ctx.repeated.write(this.log, 'warn', this.peer, { err }, 'Unable to write to socket');
        return 'reply could not be written';
      }
      // A client sends its next request after reading this reply, so a read
      // now would almost always fail with EAGAIN: wait for the data instead
      // (one syscall less per request; a pipelining client is just read on
      // the next turn of the event loop). A stopping daemon reads no more.
      if (this.ctx.accepting()) await this.stream.waitReadable();
    }
    return 'daemon stopping';
  }

  /** Reads exactly what the parser wants until it completes a step or gives up. */
  private async readUntilStep(): Promise<
    | { kind: 'handshake' }
    | { kind: 'request'; request: PrRequest }
    | { kind: 'lost-fd'; request: Pick<PrRequest, 'direction' | 'transferLength'> }
    | { kind: 'close'; reason: CloseReason | null; detail?: Record<string, unknown> }
  > {
    try {
      for (;;) {
        if (this.parser.midFrame()) this.armFrameTimer();
        const chunk = await this.stream.read(this.parser.wanted());
        if (!chunk) {
          const end = this.parser.end();
          end.discard.forEach(closeQuietly);
          if (this.timedOut) return { kind: 'close', reason: CloseReason.TIMEOUT, detail: { ms: this.ctx.frameTimeoutMs } };
          if (this.stream.isClosed) return { kind: 'close', reason: null };
          return end.step as { kind: 'close'; reason: CloseReason };
        }
        const result = this.parser.push(chunk.data, chunk.fds, chunk.truncated);
        result.discard.forEach(closeQuietly);
        if (result.step.kind !== 'more') return result.step;
      }
    } finally {
      if (this.frameTimer) clearTimeout(this.frameTimer);
      this.frameTimer = null;
    }
  }

  private armFrameTimer(): void {
    if (this.frameTimer || this.ctx.frameTimeoutMs === null) return;
    this.frameTimer = setTimeout(() => {
      this.timedOut = true;
      this.stream.close();
    }, this.ctx.frameTimeoutMs);
  }

  private dropped(reason: CloseReason | null, detail?: Record<string, unknown>): string {
    if (!reason) return 'closed by the daemon';
    if (this.stream.error) detail = { ...detail, err: this.stream.error };
    if (reason.message) this.ctx.repeated.write(this.log, 'warn', this.peer, { reason: reason.code, ...detail }, reason.message);
    else this.log.debug({ reason: reason.code, ...detail }, 'dropping connection');
    return reason.code;
  }

  private async execute(request: PrRequest): Promise<Buffer> {
    const started = process.hrtime.bigint();
    this.executing = true;
    this.requests++;
    this.current = request;
    this.currentSince = started;
    let result: BackendResult;
    try {
      result = await this.dispatch(request);
      // Before the descriptor is closed: the lines name its device.
      this.report(request, result, started);
    } finally {
      this.current = null;
      // The original closes the descriptor before it writes the reply.
      closeQuietly(request.fd);
      this.executing = false;
    }
    return encodeResponse(request, result);
  }

  /**
   * The audit trail and failures (see outcomeLine) at the default level, one
   * line per request at debug. Lines are built only when they will be
   * written: a PR IN that went well costs nothing at the default level.
   */
  private report(request: PrRequest, result: BackendResult, started: bigint): void {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.ctx.monitor.commandDone(request, result, seconds);
    const log = this.log;
    const level = log.isLevelEnabled('info') ? outcomeLevel(request.direction, result) : null;
    if (level !== null) {
      const line = () => {
        const { msg, fields } = outcomeLine(request, result)!;
        return { msg, fields: { ...fields, ...this.ctx.devices.of(request.fd) } };
      };
      if (level === 'warn') {
        this.ctx.repeated.writeLazy(log, 'warn', this.peer, failureKey(request.cdb, result), line);
      } else {
        const { msg, fields } = line();
        log.info(fields, msg);
      }
    }
    if (log.isLevelEnabled('debug')) {
      log.debug(
        {
          ...describePrCommand(request.cdb, request.params),
          ...this.ctx.devices.of(request.fd),
          length: request.transferLength,
          status: statusName(result.status),
          sense: describeSense(result.status === ScsiStatus.CHECK_CONDITION ? result.sense : null),
          ms: seconds * 1e3,
        },
        'request',
      );
    }
  }

  private async dispatch(request: PrRequest): Promise<BackendResult> {
    let flags: number | null;
    try {
      flags = native.getStatusFlags(request.fd);
    } catch {
      flags = null;
    }
    const refusal = accessRefusal(request.direction, flags);
    if (refusal !== null) return refusal;
    if (flags !== null && flags & native.O_NONBLOCK) {
      // O_NONBLOCK travels with SCM_RIGHTS and the open file description is
      // shared with the sender; the original clears it, visibly to the client.
      try {
        native.setStatusFlags(request.fd, flags & ~native.O_NONBLOCK);
      } catch {
        // Not every descriptor accepts F_SETFL; the command still runs.
      }
    }
    try {
      const { cdb, direction, transferLength, params, fd } = request;
      return await this.ctx.backend.execute({ cdb, direction, transferLength, params, fd, peer: this.peer });
    } catch (err) {
      this.log.error({ err, backend: this.ctx.backend.name }, 'backend failed; replying ABORTED COMMAND');
      return { status: ScsiStatus.CHECK_CONDITION, sense: fixedSense(Sense.IO_PROCESS_TERMINATED) };
    }
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already closed: nothing left to release.
  }
}
