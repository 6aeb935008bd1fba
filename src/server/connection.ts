import type { Logger } from 'pino';
import type { Backend } from '../backend/backend.js';
import type { FdStream } from '../io/fd-stream.js';
import * as native from '../native/binding.js';
import { SUPPORTED_FEATURES } from '../protocol/constants.js';
import type { PrRequest } from '../protocol/request.js';
import { RequestParser, type CloseReason } from '../protocol/request-parser.js';
import { encodeHandshake, encodeResponse, type CommandResult } from '../protocol/response.js';
import { describePrCommand, describeSense } from '../scsi/pr-describe.js';
import { fixedSense, Sense } from '../scsi/sense.js';
import { ScsiStatus } from '../scsi/status.js';

export interface ConnectionContext {
  readonly backend: Backend;
  /** False once the daemon stops: no new request is read (the `state == RUNNING` loop of QEMU's prh_co_entry). */
  readonly accepting: () => boolean;
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
  private executing = false;
  private requests = 0;

  constructor(
    private readonly stream: FdStream,
    readonly peer: native.PeerCredentials,
    private readonly ctx: ConnectionContext,
    private readonly log: Logger,
  ) {}

  get isExecuting(): boolean {
    return this.executing;
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
      this.log.info(
        { requests: this.requests, ms: Number(process.hrtime.bigint() - opened) / 1e6, end },
        'connection closed',
      );
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
      if (next.kind !== 'request') continue;
      const reply = await this.execute(next.request);
      try {
        await this.stream.write(reply);
      } catch (err) {
        if (!this.stream.isClosed) this.log.warn({ err }, 'Unable to write to socket');
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
    | { kind: 'close'; reason: CloseReason | null; detail?: Record<string, unknown> }
  > {
    for (;;) {
      const chunk = await this.stream.read(this.parser.wanted());
      if (!chunk) {
        const end = this.parser.end();
        end.discard.forEach(closeQuietly);
        if (this.stream.isClosed) return { kind: 'close', reason: null };
        return end.step as { kind: 'close'; reason: CloseReason };
      }
      const result = this.parser.push(chunk.data, chunk.fds);
      result.discard.forEach(closeQuietly);
      if (result.step.kind !== 'more') return result.step;
    }
  }

  private dropped(reason: CloseReason | null, detail?: Record<string, unknown>): string {
    if (!reason) return 'closed by the daemon';
    if (this.stream.error) detail = { ...detail, err: this.stream.error };
    if (reason.message) this.log.warn({ reason: reason.code, ...detail }, reason.message);
    else this.log.debug({ reason: reason.code, ...detail }, 'dropping connection');
    return reason.code;
  }

  private async execute(request: PrRequest): Promise<Buffer> {
    // The request line is built only when it will be written: describing a
    // command allocates, and at -q or the default level nobody reads it.
    const traced = this.log.isLevelEnabled('debug');
    const started = traced ? process.hrtime.bigint() : 0n;
    this.executing = true;
    this.requests++;
    let result: CommandResult;
    try {
      result = await this.dispatch(request);
    } finally {
      // The original closes the descriptor before it writes the reply.
      closeQuietly(request.fd);
      this.executing = false;
    }
    if (traced) {
      this.log.debug(
        {
          ...describePrCommand(request.cdb, request.params),
          length: request.transferLength,
          status: result.status,
          sense: describeSense(result.status === ScsiStatus.CHECK_CONDITION ? result.sense : null),
          ms: Number(process.hrtime.bigint() - started) / 1e6,
        },
        'request',
      );
    }
    return encodeResponse(request, result);
  }

  private async dispatch(request: PrRequest): Promise<CommandResult> {
    let flags: number;
    try {
      flags = native.getStatusFlags(request.fd);
    } catch {
      flags = native.O_RDONLY;
    }
    if (flags & native.O_NONBLOCK) {
      // O_NONBLOCK travels with SCM_RIGHTS and the open file description is
      // shared with the sender; the original clears it, visibly to the client.
      try {
        native.setStatusFlags(request.fd, flags & ~native.O_NONBLOCK);
      } catch {
        // Not every descriptor accepts F_SETFL; the command still runs.
      }
    }
    if (request.direction === 'out' && (flags & native.O_ACCMODE) === native.O_RDONLY) {
      return { status: ScsiStatus.CHECK_CONDITION, sense: fixedSense(Sense.INVALID_OPCODE) };
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
    native.close(fd);
  } catch {
    // Already closed: nothing left to release.
  }
}
