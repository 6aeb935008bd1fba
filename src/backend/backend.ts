import type { PeerCredentials } from '../native/binding.js';
import type { PrRequest } from '../protocol/request.js';
import type { CommandResult } from '../protocol/response.js';

export interface BackendRequest extends PrRequest {
  /** Who sent the request (SO_PEERCRED of the connection). */
  readonly peer: PeerCredentials;
}

/**
 * Executes one PR command on the device behind `fd`. The server never knows
 * which implementation it talks to. The descriptor stays owned by the server,
 * which closes it after execute() settles; implementations must not keep it.
 * execute() may run concurrently for different connections.
 */
export interface Backend {
  readonly name: string;
  execute(request: BackendRequest): Promise<CommandResult>;
  close(): Promise<void>;
}
