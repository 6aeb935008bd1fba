import type { BackendResult } from '../backend/backend.js';
import { sgioTimeout } from '../backend/sgio-result.js';
import type { PrRequest } from '../protocol/request.js';
import { ScsiStatus } from '../scsi/status.js';

/** Why a connection was closed right after accept. */
export type RefusalReason = 'allow-list' | 'connection-limit';

/** Told about every completed command (the Prometheus metrics, when enabled). */
export type CommandListener = (request: PrRequest, result: BackendResult, seconds: number) => void;

/** Counts since start, for `pr-helper status` and the metrics. */
export interface Counters {
  requests: number;
  /** Replies other than GOOD and RESERVATION CONFLICT (a UNIT ATTENTION too: the command was not performed). */
  failures: number;
  reservationConflicts: number;
  sgioErrors: number;
  /** SG_IO that timed out: host_status DID_TIME_OUT, or the driver's timeout. */
  timeouts: number;
  connectionsAccepted: number;
  refusedAllowList: number;
  refusedConnectionLimit: number;
}

/**
 * What the daemon has done since it started, kept as plain numbers: cheap
 * enough for every request, and no metrics library loaded unless --metrics
 * asks for one (prom-client takes ~75 ms to load).
 */
export class Monitor {
  readonly startedAt = Date.now();
  readonly counters: Counters = {
    requests: 0,
    failures: 0,
    reservationConflicts: 0,
    sgioErrors: 0,
    timeouts: 0,
    connectionsAccepted: 0,
    refusedAllowList: 0,
    refusedConnectionLimit: 0,
  };
  private readonly listeners: CommandListener[] = [];

  onCommand(listener: CommandListener): void {
    this.listeners.push(listener);
  }

  commandDone(request: PrRequest, result: BackendResult, seconds: number): void {
    const c = this.counters;
    c.requests++;
    const status = result.status;
    if (status === ScsiStatus.RESERVATION_CONFLICT) c.reservationConflicts++;
    else if (status !== ScsiStatus.GOOD) c.failures++;
    const t = result.transport;
    if (t) {
      if (t.errno !== 0) c.sgioErrors++;
      if (sgioTimeout(t) !== null) c.timeouts++;
    }
    for (const listener of this.listeners) listener(request, result, seconds);
  }

  connectionAccepted(): void {
    this.counters.connectionsAccepted++;
  }

  connectionRefused(reason: RefusalReason): void {
    if (reason === 'allow-list') this.counters.refusedAllowList++;
    else this.counters.refusedConnectionLimit++;
  }
}
