/**
 * What a load connection sends, request after request. Buffers are built once
 * per connection and reused, so the client spends its time in the socket
 * calls rather than in allocation.
 */
import { CDB_SIZE } from '../../src/protocol/constants.js';
import { PrInAction, PrOutAction } from '../../src/scsi/pr-codes.js';
import { encodePrInCdb } from '../../src/scsi/pr-in.js';
import { BASIC_PARAMETER_LIST_LENGTH, encodePrOutCdb } from '../../src/scsi/pr-out.js';

/** A PR IN CDB with QEMU's usual 8 KiB buffer, padded to 16 bytes as QEMU sends it. */
const prIn = (action: number): Buffer => encodePrInCdb({ action, allocationLength: 8192 }, CDB_SIZE);

export type WorkloadName = 'read-keys' | 'sim-mix';

export interface PlannedRequest {
  readonly cdb: Buffer;
  /** PR OUT parameter list, sent in its own sendmsg after the CDB like QEMU does; null for PR IN. */
  readonly params: Buffer | null;
}

export interface Workload {
  next(): PlannedRequest;
}

/** PERSISTENT RESERVE IN / READ KEYS with QEMU's usual 8 KiB buffer. */
function readKeys(): Workload {
  const request = { cdb: prIn(PrInAction.READ_KEYS), params: null };
  return { next: () => request };
}

/**
 * The simulated-disk mix: READ KEYS, READ RESERVATION, then REGISTER AND
 * IGNORE EXISTING KEY with a fresh key, so one command in three changes the
 * registration of this process's I_T nexus.
 */
function simMix(connection: number): Workload {
  const keys = { cdb: prIn(PrInAction.READ_KEYS), params: null };
  const reservation = { cdb: prIn(PrInAction.READ_RESERVATION), params: null };
  const params = Buffer.alloc(BASIC_PARAMETER_LIST_LENGTH);
  const cdb = encodePrOutCdb({ action: PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, parameterListLength: params.length }, CDB_SIZE);
  const register = { cdb, params };
  let step = 0;
  let counter = 0;
  return {
    next() {
      const k = step++ % 3;
      if (k === 0) return keys;
      if (k === 1) return reservation;
      // Service action reservation key (bytes 8-15): connection in the high word, never 0.
      params.writeUInt32BE(connection + 1, 8);
      params.writeUInt32BE(++counter >>> 0, 12);
      return register;
    },
  };
}

export function createWorkload(name: WorkloadName, connection: number): Workload {
  return name === 'read-keys' ? readKeys() : simMix(connection);
}
