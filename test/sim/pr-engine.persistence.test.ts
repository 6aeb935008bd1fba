import { describe, expect, it } from 'vitest';
import { parsePersistedLunState } from '../../src/sim/persisted-state.js';
import { PrEngine } from '../../src/sim/pr-engine.js';
import {
  EA_AR,
  expectGood,
  fc,
  IN,
  Initiator,
  iscsi,
  lun,
  nexus,
  NODE_A,
  NODE_B,
  prInCdb,
  sas,
  WE_RO,
} from './helpers.js';

const PORTS = { targetPorts: [1, 2] };

function observe(engine: PrEngine): Buffer[] {
  const observer = nexus(iscsi('iqn.observer'));
  return [IN.READ_KEYS, IN.READ_RESERVATION, IN.REPORT_CAPABILITIES, IN.READ_FULL_STATUS].map(
    (action) => engine.execute(observer, prInCdb(action), Buffer.alloc(0)).data,
  );
}

/** A busy unit: iSCSI holder with APTPL, FC on port 2, SAS with an ALL_TG_PT registration. */
function busy(): { engine: PrEngine; a: Initiator; sasOn2: Initiator } {
  const { engine, a } = lun();
  const fcOn2 = new Initiator(engine, nexus(fc('21000024ff5a2b3c'), 2));
  const sasOn1 = new Initiator(engine, nexus(sas('500605b0000272b0'), 1));
  expectGood(a.registerIgnore(0x1111n, { aptpl: true }));
  expectGood(fcOn2.registerIgnore(0x2222n, { aptpl: true }));
  expectGood(sasOn1.registerIgnore(0x3333n, { aptpl: true, allTgPt: true }));
  expectGood(a.reserve(0x1111n, WE_RO));
  return { engine, a, sasOn2: new Initiator(engine, nexus(sas('500605b0000272b0'), 2)) };
}

describe('snapshot (§7.2)', () => {
  it('of a fresh unit', () => {
    expect(new PrEngine(PORTS).snapshot()).toEqual({
      version: 1,
      generation: 0,
      aptpl: false,
      registrations: [],
      reservation: null,
    });
  });

  it('holds registrations with TransportIDs, ports, keys and ALL_TG_PT, the reservation, generation and APTPL', () => {
    const { engine } = busy();
    expect(engine.snapshot()).toEqual({
      version: 1,
      generation: 3,
      aptpl: true,
      registrations: [
        { initiator: { protocol: 'iscsi', name: NODE_A, isid: null }, targetPort: 1, key: '0000000000001111', allTgPt: false },
        { initiator: { protocol: 'fc', wwpn: '21000024ff5a2b3c' }, targetPort: 2, key: '0000000000002222', allTgPt: false },
        { initiator: { protocol: 'sas', address: '500605b0000272b0' }, targetPort: 1, key: '0000000000003333', allTgPt: true },
        { initiator: { protocol: 'sas', address: '500605b0000272b0' }, targetPort: 2, key: '0000000000003333', allTgPt: true },
      ],
      reservation: { type: WE_RO, scope: 0, holder: { initiator: { protocol: 'iscsi', name: NODE_A, isid: null }, targetPort: 1 } },
    });
  });

  it('has no holder for the all-registrants types', () => {
    const { a } = lun();
    expectGood(a.registerIgnore(0x1n, { aptpl: true }));
    expectGood(a.reserve(0x1n, EA_AR));
    expect(a.engine.snapshot().reservation).toEqual({ type: EA_AR, scope: 0, holder: null });
  });

  it('still describes the state when APTPL is off', () => {
    const { a } = lun();
    expectGood(a.registerIgnore(0x1n));
    expect(a.engine.snapshot()).toMatchObject({ aptpl: false, registrations: [{ key: '0000000000000001' }] });
  });
});

describe('restore', () => {
  it('round-trips through JSON to an engine that reports and behaves the same', () => {
    const { engine } = busy();
    const restored = PrEngine.restore(JSON.parse(JSON.stringify(engine.snapshot())), PORTS);
    expect(restored.snapshot()).toEqual(engine.snapshot());
    expect(observe(restored)).toEqual(observe(engine));

    // The ALL_TG_PT group still acts as one registration; the holder still holds.
    const sasOn2 = new Initiator(restored, nexus(sas('500605b0000272b0'), 2));
    expectGood(sasOn2.registerIgnore(0n));
    const a = new Initiator(restored, nexus(iscsi(NODE_A)));
    expect(a.readKeys().keys).toEqual([0x1111n, 0x2222n]);
    expectGood(a.release(0x1111n, WE_RO));
  });

  it('queues no unit attention by itself', () => {
    const { engine } = busy();
    const restored = PrEngine.restore(engine.snapshot(), PORTS);
    expect(new Initiator(restored, nexus(iscsi(NODE_B))).drainUnitAttentions()).toEqual([]);
  });

  it('keeps registrations on target ports the unit no longer has', () => {
    const { engine } = busy();
    const restored = PrEngine.restore(engine.snapshot(), { targetPorts: [1] });
    expect(new Initiator(restored, nexus(iscsi(NODE_B))).readKeys().keys).toHaveLength(4);
  });

  const valid = (): Record<string, unknown> => JSON.parse(JSON.stringify(busy().engine.snapshot()));
  const withReg = (i: number, patch: Record<string, unknown>) => (s: Record<string, unknown>) => {
    const regs = s['registrations'] as Record<string, unknown>[];
    regs[i] = { ...regs[i], ...patch };
  };
  const rows: [string, (s: Record<string, unknown>) => unknown, string][] = [
    ['not an object', () => 'text', 'invalid PR state: state must be an object'],
    ['null', () => null, 'invalid PR state: state must be an object'],
    ['another version', (s) => void (s['version'] = 2), 'state.version must be 1'],
    ['missing generation', (s) => void delete s['generation'], 'state.generation is missing'],
    ['unknown field', (s) => void (s['extra'] = true), 'state.extra is not a known field'],
    ['negative generation', (s) => void (s['generation'] = -1), 'state.generation must be an integer 0..4294967295'],
    ['generation 2^32', (s) => void (s['generation'] = 2 ** 32), 'state.generation must be an integer 0..4294967295'],
    ['fractional generation', (s) => void (s['generation'] = 1.5), 'state.generation must be an integer'],
    ['APTPL as a string', (s) => void (s['aptpl'] = 'yes'), 'state.aptpl must be a boolean'],
    ['registrations not an array', (s) => void (s['registrations'] = {}), 'state.registrations must be an array'],
    ['registration not an object', (s) => void ((s['registrations'] as unknown[])[1] = 7), 'state.registrations[1] must be an object'],
    ['zero key', withReg(0, { key: '0000000000000000' }), 'state.registrations[0].key must be 16 lowercase hex digits and not zero'],
    ['short key', withReg(0, { key: '1111' }), 'state.registrations[0].key must be 16 lowercase hex digits'],
    ['numeric key', withReg(0, { key: 4369 }), 'state.registrations[0].key must be 16 lowercase hex digits'],
    ['target port 0', withReg(1, { targetPort: 0 }), 'state.registrations[1].targetPort must be an integer 1..65535'],
    ['target port 65536', withReg(1, { targetPort: 65536 }), 'state.registrations[1].targetPort must be an integer 1..65535'],
    ['allTgPt missing', (s) => void delete (s['registrations'] as Record<string, unknown>[])[0]!['allTgPt'], 'state.registrations[0].allTgPt is missing'],
    ['allTgPt as a number', withReg(0, { allTgPt: 1 }), 'state.registrations[0].allTgPt must be a boolean'],
    ['bad initiator protocol', withReg(1, { initiator: { protocol: 'spi' } }), 'state.registrations[1].initiator.protocol must be "iscsi", "fc" or "sas"'],
    ['bad WWPN', withReg(1, { initiator: { protocol: 'fc', wwpn: 'xyz' } }), 'state.registrations[1].initiator.wwpn must be 16 lowercase hex digits'],
    ['empty iSCSI name', withReg(0, { initiator: { protocol: 'iscsi', name: '', isid: null } }), 'state.registrations[0].initiator.name is empty'],
    ['duplicate I_T nexus', withReg(1, { initiator: { protocol: 'iscsi', name: NODE_A.toUpperCase(), isid: null }, targetPort: 1 }), 'state.registrations[1] registers the same I_T nexus twice'],
    ['split ALL_TG_PT group', withReg(3, { key: '0000000000004444' }), 'state.registrations[3].key differs from its ALL_TG_PT registration group'],
    ['reservation type 2', (s) => void ((s['reservation'] as Record<string, unknown>)['type'] = 2), 'state.reservation.type must be 1, 3, 5, 6, 7 or 8'],
    ['reservation scope 1', (s) => void ((s['reservation'] as Record<string, unknown>)['scope'] = 1), 'state.reservation.scope must be 0 (LU_SCOPE)'],
    ['reservation without holder', (s) => void ((s['reservation'] as Record<string, unknown>)['holder'] = null), 'state.reservation.holder must be an object'],
    ['holder not registered', (s) => void ((s['reservation'] as Record<string, unknown>)['holder'] = { initiator: { protocol: 'iscsi', name: NODE_B, isid: null }, targetPort: 1 }), 'state.reservation.holder is not a registered I_T nexus'],
    ['AR reservation with a holder', (s) => void ((s['reservation'] as Record<string, unknown>)['type'] = 7), 'state.reservation.holder must be null for an all-registrants type'],
    ['AR reservation without registrations', () => ({ version: 1, generation: 0, aptpl: true, registrations: [], reservation: { type: 8, scope: 0, holder: null } }), 'state.reservation is an all-registrants reservation without registrations'],
    ['reservation missing', (s) => void delete s['reservation'], 'state.reservation is missing'],
  ];

  it.each(rows)('rejects %s', (_name, mutate, message) => {
    const state = valid();
    const replaced = mutate(state);
    const input = replaced === undefined ? state : replaced;
    expect(() => PrEngine.restore(input, PORTS)).toThrow(message);
    expect(() => parsePersistedLunState(input)).toThrow(message);
  });
});

describe('engine options and nexuses', () => {
  it.each([
    [{ targetPorts: [] }, 'at least one target port'],
    [{ targetPorts: [0] }, 'must be an integer 1..65535'],
    [{ targetPorts: [65536] }, 'must be an integer 1..65535'],
    [{ targetPorts: [1, 1] }, 'unique'],
    [{ targetPorts: [1], maxRegistrations: 0 }, 'maxRegistrations'],
  ])('rejects %j', (options, message) => {
    expect(() => new PrEngine(options)).toThrow(message);
  });

  it('refuses a nexus on a target port the unit does not have', () => {
    const engine = new PrEngine({ targetPorts: [1] });
    expect(() => engine.execute(nexus(iscsi(NODE_A), 2), prInCdb(IN.READ_KEYS), Buffer.alloc(0))).toThrow(RangeError);
  });
});
