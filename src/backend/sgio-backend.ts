import type { Logger } from 'pino';
import * as native from '../native/binding.js';
import { MAX_TRANSFER } from '../protocol/constants.js';
import type { Backend, BackendRequest, BackendResult } from './backend.js';
import { MultipathRouter, type MultipathOptions } from './multipath.js';
import { mapSgioOutcome } from './sgio-result.js';

export interface SgioBackendOptions {
  /**
   * The original passes 1 ms, which the kernel silently raises for block
   * devices; an explicit, generous timeout keeps a slow array from failing PR
   * commands while still bounding a hung one.
   */
  readonly timeoutMs: number;
  readonly log: Logger;
  /** dm-multipath: test hooks (sysfs root, device directory, ...); see multipath.ts. */
  readonly multipath?: Omit<MultipathOptions, 'timeoutMs' | 'log'>;
}

/** Real devices: the CDB goes to the descriptor's device through ioctl(SG_IO). */
export class SgioBackend implements Backend {
  readonly name = 'sgio';

  private readonly multipath: MultipathRouter;

  constructor(private readonly options: SgioBackendOptions) {
    this.multipath = new MultipathRouter({ timeoutMs: options.timeoutMs, log: options.log, ...options.multipath });
  }

  async execute(request: BackendRequest): Promise<BackendResult> {
    // A request on a dm-multipath map goes through the map's paths, so that
    // registrations reach every I_T nexus; null: not a map.
    const viaPaths = await this.multipath.execute(request);
    if (viaPaths !== null) return viaPaths;
    // PR IN always reads into the full 8 KiB buffer and lets the device limit
    // itself by the CDB, like the original (do_pr_in in scsi/qemu-pr-helper.c).
    const outcome =
      request.direction === 'in'
        ? await native.sgio(request.fd, request.cdb, native.SgDirection.FROM_DEV, MAX_TRANSFER, this.options.timeoutMs)
        : await native.sgio(request.fd, request.cdb, native.SgDirection.TO_DEV, request.params, this.options.timeoutMs);
    const dxferLength = request.direction === 'in' ? MAX_TRANSFER : request.params.length;
    const mapped = mapSgioOutcome(outcome, dxferLength);
    // The connection logs failures, with the device and the VM it knows.
    const { errno, hostStatus, driverStatus } = outcome;
    return {
      status: mapped.status,
      sense: mapped.sense,
      data: outcome.data ? outcome.data.subarray(0, Math.min(mapped.transferred, request.transferLength)) : null,
      transport: mapped.unknownHostStatus === undefined ? { errno, hostStatus, driverStatus } : { errno, hostStatus, driverStatus, unmappedHostStatus: true },
    };
  }

  async close(): Promise<void> {}
}
