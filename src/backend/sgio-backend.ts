import type { Logger } from 'pino';
import * as native from '../native/binding.js';
import { MAX_TRANSFER } from '../protocol/constants.js';
import type { Backend, BackendRequest, BackendResult } from './backend.js';
import { fstatSync } from 'node:fs';
import { partialDeviceReason } from './device-scope.js';
import { SgioAdmission } from './sgio-admission.js';
import { identifyByFstat, MultipathRouter, type DeviceIdentity, type MultipathOptions } from './multipath.js';
import { mapSgioOutcome } from './sgio-result.js';
import { fixedSense, Sense } from '../scsi/sense.js';
import { ScsiStatus } from '../scsi/status.js';

export interface SgioBackendOptions {
  /**
   * The original passes 1 ms, which the kernel silently raises for block
   * devices; an explicit, generous timeout keeps a slow array from failing PR
   * commands while still bounding a hung one.
   */
  readonly timeoutMs: number;
  readonly log: Logger;
  /**
   * Serve partitions and partial device-mapper devices too, as the original
   * does, although their PR commands act on the whole LUN (device-scope.ts).
   */
  readonly allowPartialDevices?: boolean;
  /** SG_IO commands (and so native threads) in flight in all; beyond: BUSY (sgio-admission.ts). */
  readonly maxCommands: number;
  /** SG_IO commands in flight on one device; beyond: BUSY. */
  readonly maxDeviceCommands: number;
  /** dm-multipath: test hooks (sysfs root, device directory, ...); see multipath.ts. */
  readonly multipath?: Omit<MultipathOptions, 'timeoutMs' | 'log'>;
}

/** What a descriptor that is not a block device is for admission: its device number, or its inode. */
function deviceKey(fd: number): string {
  try {
    const st = fstatSync(fd);
    return st.isBlockDevice() || st.isCharacterDevice() ? `dev ${st.rdev}` : `inode ${st.dev}:${st.ino}`;
  } catch {
    return 'unknown';
  }
}

/** Real devices: the CDB goes to the descriptor's device through ioctl(SG_IO). */
export class SgioBackend implements Backend {
  readonly name = 'sgio';

  private readonly multipath: MultipathRouter;
  private readonly identify: (fd: number) => DeviceIdentity | null;
  private readonly sysfsRoot: string;
  /** Devices whose refusal was logged (once each: a guest retrying must not flood the log). */
  private readonly refusedLogged = new Set<string>();
  private readonly admission: SgioAdmission;

  constructor(private readonly options: SgioBackendOptions) {
    this.multipath = new MultipathRouter({ timeoutMs: options.timeoutMs, log: options.log, ...options.multipath });
    this.identify = options.multipath?.identify ?? identifyByFstat;
    this.sysfsRoot = options.multipath?.sysfsRoot ?? '/sys';
    this.admission = new SgioAdmission(options.maxCommands, options.maxDeviceCommands);
  }

  async execute(request: BackendRequest): Promise<BackendResult> {
    // One fstat(2) per request serves the partial-device check, admission and the multipath router.
    const identity = this.identify(request.fd);
    const partial = this.options.allowPartialDevices ? null : this.partialDevice(identity);
    if (partial !== null) return partial;
    const release = this.admission.admit(identity?.block ? `block ${identity.major}:${identity.minor}` : deviceKey(request.fd));
    if (release === null) return { status: ScsiStatus.BUSY };
    try {
      return await this.issue(request, identity);
    } finally {
      release();
    }
  }

  private async issue(request: BackendRequest, identity: DeviceIdentity | null): Promise<BackendResult> {
    // A request on a dm-multipath map goes through the map's paths, so that
    // registrations reach every I_T nexus; null: not a map.
    const viaPaths = await this.multipath.execute(request, identity);
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

  /**
   * A partition or partial dm device is answered as a device without PR
   * support answers: INVALID COMMAND OPERATION CODE, the reply the original
   * gives to the commands it refuses (PR OUT on a read-only descriptor).
   */
  private partialDevice(identity: DeviceIdentity | null): BackendResult | null {
    if (!identity?.block) return null;
    const reason = partialDeviceReason(this.sysfsRoot, identity.major, identity.minor);
    if (reason === null) return null;
    const device = `${identity.major}:${identity.minor}`;
    if (!this.refusedLogged.has(device)) {
      this.refusedLogged.add(device);
      this.options.log.warn({ device, reason }, `refusing PR on ${reason}: it would act on the whole LUN (--allow-partial-devices serves it)`);
    }
    return { status: ScsiStatus.CHECK_CONDITION, sense: fixedSense(Sense.INVALID_OPCODE) };
  }

  async close(): Promise<void> {
    this.multipath.close();
  }
}
