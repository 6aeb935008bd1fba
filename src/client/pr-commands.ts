/**
 * Builders for PERSISTENT RESERVE IN/OUT CDBs and basic parameter lists
 * (SPC-4 6.15/6.16), zero-padded to the 16 bytes QEMU sends.
 */
import { Opcode } from '../scsi/status.js';

export { PrInAction, PrOutAction } from '../scsi/pr-codes.js';
export const PrType = { WE: 1, EA: 3, WE_RO: 5, EA_RO: 6, WE_AR: 7, EA_AR: 8 } as const;

export function prInCdb(action: number, allocationLength: number): Buffer {
  const cdb = Buffer.alloc(16);
  cdb[0] = Opcode.PERSISTENT_RESERVE_IN;
  cdb[1] = action & 0x1f;
  cdb.writeUInt16BE(allocationLength, 7);
  return cdb;
}

export function prOutCdb(action: number, type: number, parameterListLength: number): Buffer {
  const cdb = Buffer.alloc(16);
  cdb[0] = Opcode.PERSISTENT_RESERVE_OUT;
  cdb[1] = action & 0x1f;
  cdb[2] = type & 0x0f; // scope LU_SCOPE (0)
  cdb.writeUInt32BE(parameterListLength, 5);
  return cdb;
}

export interface BasicParams {
  key?: bigint;
  saKey?: bigint;
  specIpt?: boolean;
  allTgPt?: boolean;
  aptpl?: boolean;
  /** SPEC_I_PT TransportIDs, each already encoded. */
  transportIds?: readonly Uint8Array[];
}

/** The 24-byte basic parameter list, plus the TransportID list when SPEC_I_PT is set. */
export function basicParams(p: BasicParams): Buffer {
  const tids = p.specIpt ? Buffer.concat((p.transportIds ?? []).map((t) => Buffer.from(t))) : Buffer.alloc(0);
  const out = Buffer.alloc(24 + (p.specIpt ? 4 + tids.length : 0));
  out.writeBigUInt64BE(p.key ?? 0n, 0);
  out.writeBigUInt64BE(p.saKey ?? 0n, 8);
  out[20] = (p.specIpt ? 0x08 : 0) | (p.allTgPt ? 0x04 : 0) | (p.aptpl ? 0x01 : 0);
  if (p.specIpt) {
    out.writeUInt32BE(tids.length, 24);
    tids.copy(out, 28);
  }
  return out;
}

/** REGISTER AND MOVE parameter list (SPC-4 6.16.4). */
export function registerAndMoveParams(key: bigint, saKey: bigint, relativeTargetPort: number, transportId: Uint8Array, options: { unreg?: boolean; aptpl?: boolean } = {}): Buffer {
  const out = Buffer.alloc(24 + transportId.length);
  out.writeBigUInt64BE(key, 0);
  out.writeBigUInt64BE(saKey, 8);
  out[17] = (options.unreg ? 0x02 : 0) | (options.aptpl ? 0x01 : 0);
  out.writeUInt16BE(relativeTargetPort, 18);
  out.writeUInt32BE(transportId.length, 20);
  out.set(transportId, 24);
  return out;
}
