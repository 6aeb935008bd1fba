import type { PeerCredentials } from '../native/binding.js';
import type { PrRequest } from '../protocol/request.js';
import type { CommandResult } from '../protocol/response.js';

export interface BackendRequest extends PrRequest {
  /** Who sent the request (SO_PEERCRED of the connection). */
  readonly peer: PeerCredentials;
}

/** What the transport said besides the SCSI status (SG_IO backends): for the log and the metrics. */
export interface TransportOutcome {
  /** 0, or the errno SG_IO failed with. */
  readonly errno: number;
  readonly hostStatus: number;
  readonly driverStatus: number;
  /** A host_status qemu-pr-helper has no row for (it would answer GOOD; we answer ABORTED COMMAND). */
  readonly unmappedHostStatus?: boolean;
}

export interface BackendResult extends CommandResult {
  readonly transport?: TransportOutcome;
}

/**
 * Executes one PR command on the device behind `fd`. The server never knows
 * which implementation it talks to. The descriptor stays owned by the server,
 * which closes it after execute() settles; implementations must not keep it.
 * execute() may run concurrently for different connections.
 */
export interface Backend {
  readonly name: string;
  execute(request: BackendRequest): Promise<BackendResult>;
  close(): Promise<void>;
}
