/**
 * What a load connection sends, request after request. Buffers are built once
 * per connection and reused, so the client spends its time in the socket
 * calls rather than in allocation.
 */
import { PrInAction, PrOutAction, prInCdb, prOutCdb } from '../../src/client/pr-commands.js';

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
  const request = { cdb: prInCdb(PrInAction.READ_KEYS, 8192), params: null };
  return { next: () => request };
}

/**
 * The simulated-disk mix: READ KEYS, READ RESERVATION, then REGISTER AND
 * IGNORE EXISTING KEY with a fresh key, so one command in three changes the
 * registration of this process's I_T nexus.
 */
function simMix(connection: number): Workload {
  const keys = { cdb: prInCdb(PrInAction.READ_KEYS, 8192), params: null };
  const reservation = { cdb: prInCdb(PrInAction.READ_RESERVATION, 8192), params: null };
  const params = Buffer.alloc(24);
  const register = { cdb: prOutCdb(PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, 0, 24), params };
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
