/**
 * A small per-initiator driver so engine tests read like tables, on top of the
 * shared byte builders of test/fixtures/scsi-bytes.ts (re-exported here).
 */
import { expect } from 'vitest';
import { decodeSense } from '../../src/scsi/sense.js';
import type { TransportId } from '../../src/scsi/transport-id.js';
import type { Nexus } from '../../src/sim/nexus.js';
import { PrEngine, type EngineResult, type PrEngineOptions } from '../../src/sim/pr-engine.js';
import {
  basicParams,
  GOOD,
  CHECK_CONDITION,
  IN,
  prInCdb,
  prOutCdb,
  registerAndMoveParams,
  RESERVATION_CONFLICT,
  SA,
  type BasicParamsOptions,
  type RegisterAndMoveParamsOptions,
} from '../fixtures/scsi-bytes.js';

export * from '../fixtures/scsi-bytes.js';

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
    return this.engine.execute(this.nexus, prOutCdb(action, o.type ?? 0, o.length ?? list.length, o.scope ?? 0), list);
  }

  in(action: number, allocationLength = 8192): EngineResult {
    return this.engine.execute(this.nexus, prInCdb(action, allocationLength), Buffer.alloc(0));
  }

  register(rk: bigint, sark: bigint, o: Omit<BasicParamsOptions, 'key' | 'saKey'> = {}): EngineResult {
    return this.out(SA.REGISTER, basicParams({ ...o, key: rk, saKey: sark }));
  }

  registerIgnore(sark: bigint, o: Omit<BasicParamsOptions, 'saKey'> = {}): EngineResult {
    return this.out(SA.REGISTER_IGNORE, basicParams({ ...o, saKey: sark }));
  }

  reserve(rk: bigint, type: number, scope = 0): EngineResult {
    return this.out(SA.RESERVE, basicParams({ key: rk }), { type, scope });
  }

  release(rk: bigint, type: number, scope = 0): EngineResult {
    return this.out(SA.RELEASE, basicParams({ key: rk }), { type, scope });
  }

  clear(rk: bigint): EngineResult {
    return this.out(SA.CLEAR, basicParams({ key: rk }));
  }

  preempt(rk: bigint, sark: bigint, type: number, scope = 0): EngineResult {
    return this.out(SA.PREEMPT, basicParams({ key: rk, saKey: sark }), { type, scope });
  }

  preemptAbort(rk: bigint, sark: bigint, type: number): EngineResult {
    return this.out(SA.PREEMPT_AND_ABORT, basicParams({ key: rk, saKey: sark }), { type });
  }

  move(o: RegisterAndMoveParamsOptions): EngineResult {
    return this.out(SA.REGISTER_AND_MOVE, registerAndMoveParams(o));
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
