/**
 * Builders for PR CDBs and parameter lists, written from the byte layouts in
 * spc4-pr-semantics.md §2 and §5 (independently of the engine's own codec),
 * plus a small per-initiator driver so engine tests read like tables.
 */
import { expect } from 'vitest';
import { decodeSense } from '../../src/scsi/sense.js';
import { PrEngine, type EngineResult, type Nexus, type PrEngineOptions } from '../../src/sim/pr-engine.js';
import type { TransportId } from '../../src/sim/transport-id.js';

export const GOOD = 0x00;
export const CHECK_CONDITION = 0x02;
export const RESERVATION_CONFLICT = 0x18;

/** Reservation types by their SPC codes (§6.1). */
export const WE = 1;
export const EA = 3;
export const WE_RO = 5;
export const EA_RO = 6;
export const WE_AR = 7;
export const EA_AR = 8;
export const ALL_TYPES = [WE, EA, WE_RO, EA_RO, WE_AR, EA_AR] as const;
export const TYPE_NAMES: Record<number, string> = {
  [WE]: 'WE',
  [EA]: 'EA',
  [WE_RO]: 'WE-RO',
  [EA_RO]: 'EA-RO',
  [WE_AR]: 'WE-AR',
  [EA_AR]: 'EA-AR',
};
export const isAllRegistrants = (type: number): boolean => type === WE_AR || type === EA_AR;
export const isRegistrantsOnly = (type: number): boolean => type === WE_RO || type === EA_RO;

/** PR OUT service actions (§2.1). */
export const SA = {
  REGISTER: 0,
  RESERVE: 1,
  RELEASE: 2,
  CLEAR: 3,
  PREEMPT: 4,
  PREEMPT_AND_ABORT: 5,
  REGISTER_IGNORE: 6,
  REGISTER_AND_MOVE: 7,
  REPLACE_LOST_RESERVATION: 8,
} as const;

/** PR IN service actions (§5.1). */
export const IN = { READ_KEYS: 0, READ_RESERVATION: 1, REPORT_CAPABILITIES: 2, READ_FULL_STATUS: 3 } as const;

export const iscsi = (name: string, isid: string | null = null): TransportId => ({ protocol: 'iscsi', name, isid });
export const fc = (wwpn: string): TransportId => ({ protocol: 'fc', wwpn });
export const sas = (address: string): TransportId => ({ protocol: 'sas', address });
export const nexus = (initiator: TransportId, targetPort = 1): Nexus => ({ initiator, targetPort });

export const NODE_A = 'iqn.2008-11.org.linux-kvm:node-a';
export const NODE_B = 'iqn.2008-11.org.linux-kvm:node-b';
export const NODE_C = 'iqn.2008-11.org.linux-kvm:node-c';

export interface ProutCdbOptions {
  type?: number;
  scope?: number;
  /** PARAMETER LIST LENGTH written at bytes 5-8; defaults to the list's length. */
  length?: number;
}

/** 16-byte PR OUT CDB as QEMU sends it (10 meaningful bytes, zero padded). */
export function proutCdb(action: number, length: number, o: ProutCdbOptions = {}): Buffer {
  const cdb = Buffer.alloc(16);
  cdb[0] = 0x5f;
  cdb[1] = action;
  cdb[2] = ((o.scope ?? 0) << 4) | (o.type ?? 0);
  cdb.writeUInt32BE(o.length ?? length, 5);
  return cdb;
}

/** 16-byte PR IN CDB. */
export function prinCdb(action: number, allocationLength = 8192): Buffer {
  const cdb = Buffer.alloc(16);
  cdb[0] = 0x5e;
  cdb[1] = action;
  cdb.writeUInt16BE(allocationLength, 7);
  return cdb;
}

export interface BasicListOptions {
  rk?: bigint;
  sark?: bigint;
  aptpl?: boolean;
  allTgPt?: boolean;
  specIPt?: boolean;
  transportIds?: readonly Buffer[];
  /** Overrides TRANSPORTID PARAMETER DATA LENGTH (bytes 24-27). */
  transportIdDataLength?: number;
}

/** Basic PR OUT parameter list (§2.2); 24 bytes, or 28 + TransportIDs with SPEC_I_PT. */
export function basicList(o: BasicListOptions = {}): Buffer {
  const ids = Buffer.concat([...(o.transportIds ?? [])]);
  const list = Buffer.alloc(o.specIPt ? 28 + ids.length : 24);
  list.writeBigUInt64BE(o.rk ?? 0n, 0);
  list.writeBigUInt64BE(o.sark ?? 0n, 8);
  list[20] = (o.specIPt ? 0x08 : 0) | (o.allTgPt ? 0x04 : 0) | (o.aptpl ? 0x01 : 0);
  if (o.specIPt) {
    list.writeUInt32BE(o.transportIdDataLength ?? ids.length, 24);
    ids.copy(list, 28);
  }
  return list;
}

export interface MoveListOptions {
  rk: bigint;
  sark: bigint;
  rtpi: number;
  transportId: Buffer;
  unreg?: boolean;
  aptpl?: boolean;
  /** Overrides TRANSPORTID PARAMETER DATA LENGTH (bytes 20-23). */
  transportIdDataLength?: number;
}

/** REGISTER AND MOVE parameter list (§2.3). */
export function moveList(o: MoveListOptions): Buffer {
  const list = Buffer.alloc(24 + o.transportId.length);
  list.writeBigUInt64BE(o.rk, 0);
  list.writeBigUInt64BE(o.sark, 8);
  list[17] = (o.unreg ? 0x02 : 0) | (o.aptpl ? 0x01 : 0);
  list.writeUInt16BE(o.rtpi, 18);
  list.writeUInt32BE(o.transportIdDataLength ?? o.transportId.length, 20);
  o.transportId.copy(list, 24);
  return list;
}

/**
 * iSCSI TransportID (§2.4): protocol 5, format 00b (name) or 01b (name,i,0x<ISID>),
 * ADDITIONAL LENGTH a multiple of 4 and >= 20, NUL-terminated and NUL-padded.
 */
export function iscsiTid(name: string, isid?: string): Buffer {
  const text = Buffer.from(isid === undefined ? name : `${name},i,0x${isid}`, 'utf8');
  let additional = text.length + 1;
  while (additional % 4 !== 0) additional++;
  additional = Math.max(additional, 20);
  const tid = Buffer.alloc(4 + additional);
  tid[0] = isid === undefined ? 0x05 : 0x45;
  tid.writeUInt16BE(additional, 2);
  text.copy(tid, 4);
  return tid;
}

/** FC TransportID (§2.4): 24 bytes, protocol 0, N_Port name at bytes 8-15. */
export function fcTid(wwpnHex: string): Buffer {
  const tid = Buffer.alloc(24);
  Buffer.from(wwpnHex, 'hex').copy(tid, 8);
  return tid;
}

/** SAS TransportID (§2.4): 24 bytes, protocol 6, SAS address at bytes 4-11. */
export function sasTid(addressHex: string): Buffer {
  const tid = Buffer.alloc(24);
  tid[0] = 0x06;
  Buffer.from(addressHex, 'hex').copy(tid, 4);
  return tid;
}

export interface ReadKeys {
  generation: number;
  additionalLength: number;
  keys: bigint[];
}

export interface ReadReservation {
  generation: number;
  /** null when ADDITIONAL LENGTH is 0 (no reservation). */
  reservation: { key: bigint; scope: number; type: number } | null;
}

/** Drives one I_T nexus of an engine. */
export class Initiator {
  constructor(
    readonly engine: PrEngine,
    readonly nexus: Nexus,
  ) {}

  out(action: number, list: Buffer, o: ProutCdbOptions = {}): EngineResult {
    return this.engine.execute(this.nexus, proutCdb(action, list.length, o), list);
  }

  in(action: number, allocationLength = 8192): EngineResult {
    return this.engine.execute(this.nexus, prinCdb(action, allocationLength), Buffer.alloc(0));
  }

  register(rk: bigint, sark: bigint, o: Omit<BasicListOptions, 'rk' | 'sark'> = {}): EngineResult {
    return this.out(SA.REGISTER, basicList({ ...o, rk, sark }));
  }

  registerIgnore(sark: bigint, o: Omit<BasicListOptions, 'sark'> = {}): EngineResult {
    return this.out(SA.REGISTER_IGNORE, basicList({ ...o, sark }));
  }

  reserve(rk: bigint, type: number, scope = 0): EngineResult {
    return this.out(SA.RESERVE, basicList({ rk }), { type, scope });
  }

  release(rk: bigint, type: number, scope = 0): EngineResult {
    return this.out(SA.RELEASE, basicList({ rk }), { type, scope });
  }

  clear(rk: bigint): EngineResult {
    return this.out(SA.CLEAR, basicList({ rk }));
  }

  preempt(rk: bigint, sark: bigint, type: number, scope = 0): EngineResult {
    return this.out(SA.PREEMPT, basicList({ rk, sark }), { type, scope });
  }

  preemptAbort(rk: bigint, sark: bigint, type: number): EngineResult {
    return this.out(SA.PREEMPT_AND_ABORT, basicList({ rk, sark }), { type });
  }

  move(o: MoveListOptions): EngineResult {
    return this.out(SA.REGISTER_AND_MOVE, moveList(o));
  }

  readKeys(): ReadKeys {
    const r = this.in(IN.READ_KEYS);
    expectGood(r);
    const additionalLength = r.data.readUInt32BE(4);
    const keys: bigint[] = [];
    for (let at = 8; at < 8 + additionalLength; at += 8) keys.push(r.data.readBigUInt64BE(at));
    return { generation: r.data.readUInt32BE(0), additionalLength, keys };
  }

  readReservation(): ReadReservation {
    const r = this.in(IN.READ_RESERVATION);
    expectGood(r);
    const generation = r.data.readUInt32BE(0);
    if (r.data.readUInt32BE(4) === 0) return { generation, reservation: null };
    expect(r.data.readUInt32BE(4)).toBe(16);
    return {
      generation,
      reservation: { key: r.data.readBigUInt64BE(8), scope: r.data[21]! >> 4, type: r.data[21]! & 0x0f },
    };
  }

  generation(): number {
    return this.readKeys().generation;
  }

  /** Consumes pending unit attentions; returns them as [ASC, ASCQ] pairs, oldest first. */
  drainUnitAttentions(): [number, number][] {
    const seen: [number, number][] = [];
    for (;;) {
      const r = this.in(IN.READ_KEYS);
      if (r.status === GOOD) return seen;
      const sense = decodeSense(r.sense!)!;
      expect(sense.key).toBe(0x6);
      seen.push([sense.asc, sense.ascq]);
    }
  }
}

/** A logical unit on target ports 1 and 2 with three iSCSI initiators on port 1. */
export function lun(options: PrEngineOptions = { targetPorts: [1, 2] }): {
  engine: PrEngine;
  a: Initiator;
  b: Initiator;
  c: Initiator;
  on: (name: string, targetPort?: number) => Initiator;
} {
  const engine = new PrEngine(options);
  const on = (name: string, targetPort = 1): Initiator => new Initiator(engine, nexus(iscsi(name), targetPort));
  return { engine, a: on(NODE_A), b: on(NODE_B), c: on(NODE_C), on };
}

export function expectGood(r: EngineResult): void {
  expect({ status: r.status, sense: r.sense === null ? null : decodeSense(r.sense) }).toEqual({
    status: GOOD,
    sense: null,
  });
}

export function expectConflict(r: EngineResult): void {
  expect({ status: r.status, sense: r.sense, data: r.data.length }).toEqual({
    status: RESERVATION_CONFLICT,
    sense: null,
    data: 0,
  });
}

/** CHECK CONDITION with 18-byte fixed sense carrying key/ASC/ASCQ. */
export function expectCheck(r: EngineResult, key: number, asc: number, ascq: number): void {
  expect(r.status).toBe(CHECK_CONDITION);
  expect(r.sense).not.toBeNull();
  expect(r.sense!.length).toBe(18);
  expect(r.sense![0]).toBe(0x70);
  expect(decodeSense(r.sense!)).toEqual({ key, asc, ascq });
  expect(r.data.length).toBe(0);
  expect(r.persistentStateChanged).toBe(false);
}

export const expectUnitAttention = (r: EngineResult, asc: number, ascq: number): void => expectCheck(r, 0x6, asc, ascq);

export function hex(bytes: string): Buffer {
  return Buffer.from(bytes.replace(/\s+/g, ''), 'hex');
}
