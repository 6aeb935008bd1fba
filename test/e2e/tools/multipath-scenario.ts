// The dm-multipath scenario of the VM rig (jobs/multipath.sh), run INSIDE the VM:
// node A issues PR commands on its multipath map (/dev/mapper/mpatha over two LIO
// paths), node B (the second cluster node) on its own disk of the same LUN, each
// through its own connection to the helper under test, like two QEMU processes.
// Path failures are injected through sysfs (SCSI device offline) and configfs
// (tcm_loop transport offline). Every step is appended to the results file with
// what it must produce; tools/multipath-check.ts compares on the host.
//
//   node dist/test/e2e/tools/multipath-scenario.js --socket SOCK --map /dev/mapper/mpatha \
//        --path sda=naa.…a1=/sys/kernel/config/…/tpgt_1 --path sdb=… \
//        --node-b /dev/sdc --init-b naa.…b1 --out RESULTS.jsonl
// Exit 0 when the scenario ran to the end (the checks decide), 1 on a client error.
import { closeSync, constants as fsConstants, openSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { HelperClient, type Reply } from '../../../src/client/client.js';
import { PrInAction, PrOutAction } from '../../../src/scsi/pr-codes.js';
import { decodeReadFullStatus, decodeReadKeys, decodeReadReservation } from '../../../src/scsi/pr-in.js';
import { decodeSense } from '../../../src/scsi/sense.js';
import { encodeTransportId, initiatorName } from '../../../src/scsi/transport-id.js';
import { basicParams, EA_RO, prInCdb, prOutCdb, registerAndMoveParams, WE_RO } from '../../fixtures/scsi-bytes.js';
import { appendResult } from './results.js';

export const KA = 0xa1a1000000000001n;
export const KA2 = 0xa1a1000000000002n;
export const KA3 = 0xa1a1000000000003n;
export const KB = 0xb1b1000000000001n;

const GOOD = 0x00;
const CHECK = 0x02;
const CONFLICT = 0x18;

/** What a step must produce; facts are compared as JSON. */
export interface StepExpectation {
  status: number;
  sense?: [number, number, number];
  facts?: Record<string, unknown>;
  /** Upper bound on the step's own round trip, in ms. */
  maxMs?: number;
}

/** Steps the checker insists on, in order: a scenario that stopped early fails. */
export const REQUIRED_STEPS = [
  'a-read-keys-empty',
  'a-register',
  'b-register',
  'a-read-full-status',
  'a-report-capabilities',
  'a-reserve',
  'b-reserve-conflict',
  'a-reserve-repeat',
  'b-preempt',
  'a-read-keys-ua',
  'a-read-keys',
  'a-register-again',
  'a-preempt',
  'b-register-again',
  'inject-path-offline',
  'a-read-keys-path-offline',
  'a-read-full-status-path-offline',
  'a-reserve-holder-offline',
  'b-reserve-conflict-holder-offline',
  'a-release-holder-offline',
  'a-register-key-change-path-offline',
  'inject-path-running',
  'a-register-key-change-path-back',
  'a-reserve-path-back',
  'inject-transport-offline',
  'a-read-keys-transport-down',
  'b-read-keys-transport-down',
  'a-release-transport-down',
  'a-reserve-transport-down',
  'inject-transport-online',
  'a-register-after-transport',
  'a-read-reservation',
  'a-register-and-move',
  'a-clear',
  'b-read-keys-final',
  'unprivileged-read-keys',
  'unprivileged-register',
];

interface PathSpec {
  disk: string;
  initiator: string;
  tpg: string;
}

const hexKey = (k: bigint): string => k.toString(16);

class Node {
  private constructor(
    readonly name: string,
    private readonly client: HelperClient,
    private readonly fd: number,
  ) {}

  static async open(name: string, socket: string, device: string): Promise<Node> {
    // QEMU opens the disk read-write and passes that descriptor with every request.
    const fd = openSync(device, fsConstants.O_RDWR);
    return new Node(name, await HelperClient.connect(socket), fd);
  }

  async send(cdb: Buffer, params?: Buffer): Promise<{ reply: Reply; ms: number }> {
    const t0 = process.hrtime.bigint();
    const reply = await this.client.execute(cdb, this.fd, params);
    return { reply, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
  }

  /** PR IN, consuming UNIT ATTENTIONs first (an observer's view). */
  async look(action: number): Promise<Reply> {
    for (let i = 0; ; i++) {
      const { reply } = await this.send(prInCdb(action, 8192));
      const sense = reply.status === CHECK ? decodeSense(reply.sense) : null;
      if (sense?.key !== 0x06 || i >= 5) return reply;
    }
  }

  close(): void {
    this.client.close();
    closeSync(this.fd);
  }
}

/** "key@initiator", "*" appended for a reservation holder; sorted. */
function fullStatusFacts(data: Buffer): string[] {
  return decodeReadFullStatus(data)
    .descriptors.map((d) => `${hexKey(d.key)}@${d.transportId ? initiatorName(d.transportId) : '?'}${d.rHolder ? '*' : ''}`)
    .sort();
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      socket: { type: 'string' },
      map: { type: 'string' },
      path: { type: 'string', multiple: true },
      'node-b': { type: 'string' },
      'init-b': { type: 'string' },
      out: { type: 'string' },
      // Only the check of a daemon that dropped to a user without access to the paths.
      'unprivileged-probe': { type: 'boolean' },
    },
  });
  const out = values.out!;
  if (values['unprivileged-probe']) return unprivilegedProbe(values.socket!, values.map!, out);
  const paths: PathSpec[] = (values.path ?? []).map((p) => {
    const [disk, initiator, tpg] = p.split('=') as [string, string, string];
    return { disk, initiator, tpg };
  });
  if (!values.socket || !values.map || paths.length !== 2 || !values['node-b'] || !values['init-b'] || !out) {
    console.error('usage: multipath-scenario --socket S --map DEV --path disk=init=tpg (x2) --node-b DEV --init-b NAME --out FILE');
    return 2;
  }
  // The daemon tries a map's paths in name order: "first" is the one it uses for
  // one-path commands (and so the reservation holder), the one failures hit.
  const [first, second] = [...paths].sort((a, b) => a.disk.localeCompare(b.disk)) as [PathSpec, PathSpec];
  const initB = values['init-b'];
  const entry = (key: bigint, init: string, holder = false) => `${hexKey(key)}@${init}${holder ? '*' : ''}`;
  const sorted = (...xs: string[]) => xs.sort();

  const a = await Node.open('A', values.socket, values.map);
  const b = await Node.open('B', values.socket, values['node-b']);
  appendResult(out, { step: 'scenario-start', first: first.disk, second: second.disk });

  const view = async () => {
    const rr = decodeReadReservation((await b.look(PrInAction.READ_RESERVATION)).data);
    return {
      fullStatus: fullStatusFacts((await b.look(PrInAction.READ_FULL_STATUS)).data),
      reservation: rr.reservation ? { key: hexKey(rr.reservation.key ?? 0n), type: rr.reservation.type } : null,
    };
  };

  /** Runs one command, records it with its expectation and the facts that follow it. */
  const step = async (
    name: string,
    node: Node,
    cdb: Buffer,
    params: Buffer | undefined,
    expect: StepExpectation,
    facts?: (reply: Reply) => Promise<Record<string, unknown>> | Record<string, unknown>,
  ): Promise<Reply> => {
    const { reply, ms } = await node.send(cdb, params);
    const sense = reply.status === CHECK ? decodeSense(reply.sense) : null;
    const line = {
      step: name,
      node: node.name,
      status: reply.status,
      sense: sense ? [sense.key, sense.asc, sense.ascq] : null,
      ms: Math.round(ms * 10) / 10,
      facts: facts ? await facts(reply) : {},
      expect,
    };
    appendResult(out, line);
    console.log(`${name}: status 0x${reply.status.toString(16)}${sense ? ` sense ${sense.key.toString(16)}/${sense.asc.toString(16)}/${sense.ascq.toString(16)}` : ''} ${line.ms} ms ${JSON.stringify(line.facts)}`);
    return reply;
  };
  const inject = (name: string, file: string, value: string) => {
    writeFileSync(file, `${value}\n`);
    appendResult(out, { step: name, file, value });
    console.log(`${name}: ${value} > ${file}`);
  };

  const prIn = (action: number) => prInCdb(action, 8192);
  const out24 = (action: number, type: number) => prOutCdb(action, type, 24);
  const keys = (r: Reply) => ({ keys: r.status === GOOD ? decodeReadKeys(r.data).keys.map(hexKey).sort() : null });
  const ok: StepExpectation = { status: GOOD };

  try {
    // ---- both nodes, both of A's paths working ---------------------------------
    await step('a-read-keys-empty', a, prIn(PrInAction.READ_KEYS), undefined, { status: GOOD, facts: { keys: [] } }, keys);
    await step('a-register', a, out24(PrOutAction.REGISTER, 0), basicParams({ saKey: KA }), {
      status: GOOD,
      facts: { fullStatus: sorted(entry(KA, first.initiator), entry(KA, second.initiator)) },
    }, view);
    const threeRegistered = (key: bigint, holder?: string, bHolds = false) =>
      sorted(entry(key, first.initiator, holder === first.initiator), entry(key, second.initiator, holder === second.initiator), entry(KB, initB, bHolds));
    await step('b-register', b, out24(PrOutAction.REGISTER, 0), basicParams({ saKey: KB }), {
      status: GOOD,
      facts: { fullStatus: threeRegistered(KA) },
    }, view);
    await step('a-read-full-status', a, prIn(PrInAction.READ_FULL_STATUS), undefined, {
      status: GOOD,
      facts: { fullStatus: threeRegistered(KA) },
    }, (r) => ({ fullStatus: r.status === GOOD ? fullStatusFacts(r.data) : null }));
    await step('a-report-capabilities', a, prIn(PrInAction.REPORT_CAPABILITIES), undefined, { status: GOOD, facts: { length: 8, bytes: 8 } }, (r) => ({
      length: r.data.length >= 2 ? r.data.readUInt16BE(0) : null,
      bytes: r.data.length,
    }));
    await step('a-reserve', a, out24(PrOutAction.RESERVE, WE_RO), basicParams({ key: KA }), {
      status: GOOD,
      facts: { fullStatus: threeRegistered(KA, first.initiator), reservation: { key: hexKey(KA), type: WE_RO } },
    }, view);
    await step('b-reserve-conflict', b, out24(PrOutAction.RESERVE, WE_RO), basicParams({ key: KB }), { status: CONFLICT });
    await step('a-reserve-repeat', a, out24(PrOutAction.RESERVE, WE_RO), basicParams({ key: KA }), ok);
    await step('b-preempt', b, out24(PrOutAction.PREEMPT, WE_RO), basicParams({ key: KB, saKey: KA }), {
      status: GOOD,
      facts: { fullStatus: [entry(KB, initB, true)], reservation: { key: hexKey(KB), type: WE_RO } },
    }, view);
    await step('a-read-keys-ua', a, prIn(PrInAction.READ_KEYS), undefined, { status: CHECK, sense: [0x06, 0x2a, 0x05] });
    await step('a-read-keys', a, prIn(PrInAction.READ_KEYS), undefined, { status: GOOD, facts: { keys: [hexKey(KB)] } }, keys);
    // The second path still holds its REGISTRATIONS PREEMPTED attention: the daemon
    // resends the REGISTER there instead of failing half-way.
    await step('a-register-again', a, out24(PrOutAction.REGISTER, 0), basicParams({ saKey: KA }), {
      status: GOOD,
      facts: { fullStatus: threeRegistered(KA, undefined, true) },
    }, view);
    await step('a-preempt', a, out24(PrOutAction.PREEMPT, WE_RO), basicParams({ key: KA, saKey: KB }), {
      status: GOOD,
      facts: {
        fullStatus: sorted(entry(KA, first.initiator, true), entry(KA, second.initiator)),
        reservation: { key: hexKey(KA), type: WE_RO },
      },
    }, view);
    await b.look(PrInAction.READ_KEYS); // B's REGISTRATIONS PREEMPTED attention
    await step('b-register-again', b, out24(PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, 0), basicParams({ saKey: KB }), {
      status: GOOD,
      facts: { fullStatus: threeRegistered(KA, first.initiator) },
    }, view);

    // ---- A's first path offline (SCSI device state): holder unreachable ----------
    inject('inject-path-offline', `/sys/block/${first.disk}/device/state`, 'offline');
    await step('a-read-keys-path-offline', a, prIn(PrInAction.READ_KEYS), undefined, {
      status: GOOD,
      facts: { keys: [hexKey(KA), hexKey(KA), hexKey(KB)].sort() },
    }, keys);
    await step('a-read-full-status-path-offline', a, prIn(PrInAction.READ_FULL_STATUS), undefined, {
      status: GOOD,
      facts: { fullStatus: threeRegistered(KA, first.initiator) },
    }, (r) => ({ fullStatus: r.status === GOOD ? fullStatusFacts(r.data) : null }));
    // Through the second path alone the device says RESERVATION CONFLICT (its nexus
    // is not the holder), but the holder is ours: a single-path LUN says GOOD.
    await step('a-reserve-holder-offline', a, out24(PrOutAction.RESERVE, WE_RO), basicParams({ key: KA }), ok);
    await step('b-reserve-conflict-holder-offline', b, out24(PrOutAction.RESERVE, WE_RO), basicParams({ key: KB }), { status: CONFLICT });
    // RELEASE cannot reach the holder: the daemon moves the reservation to the second
    // path (PREEMPT of its own key) and releases it there.
    await step('a-release-holder-offline', a, out24(PrOutAction.RELEASE, WE_RO), basicParams({ key: KA }), {
      status: GOOD,
      facts: { fullStatus: sorted(entry(KA, second.initiator), entry(KB, initB)), reservation: null },
    }, view);
    await step('a-register-key-change-path-offline', a, out24(PrOutAction.REGISTER, 0), basicParams({ key: KA, saKey: KA2 }), {
      status: GOOD,
      facts: { fullStatus: sorted(entry(KA2, second.initiator), entry(KB, initB)) },
    }, view);
    inject('inject-path-running', `/sys/block/${first.disk}/device/state`, 'running');
    // The returning path missed the registration: the next REGISTER repairs it.
    await step('a-register-key-change-path-back', a, out24(PrOutAction.REGISTER, 0), basicParams({ key: KA2, saKey: KA3 }), {
      status: GOOD,
      facts: { fullStatus: threeRegistered(KA3) },
    }, view);
    await step('a-reserve-path-back', a, out24(PrOutAction.RESERVE, WE_RO), basicParams({ key: KA3 }), {
      status: GOOD,
      facts: { fullStatus: threeRegistered(KA3, first.initiator), reservation: { key: hexKey(KA3), type: WE_RO } },
    }, view);

    // ---- A's first path: tcm_loop transport offline (SG_IO -> DID_TRANSPORT_DISRUPTED)
    inject('inject-transport-offline', `${first.tpg}/transport_status`, 'offline');
    await step('a-read-keys-transport-down', a, prIn(PrInAction.READ_KEYS), undefined, {
      status: GOOD,
      facts: { keys: [hexKey(KA3), hexKey(KA3), hexKey(KB)].sort() },
    }, keys);
    await step('b-read-keys-transport-down', b, prIn(PrInAction.READ_KEYS), undefined, { status: GOOD, maxMs: 2000 });
    await step('a-release-transport-down', a, out24(PrOutAction.RELEASE, WE_RO), basicParams({ key: KA3 }), {
      status: GOOD,
      facts: { fullStatus: sorted(entry(KA3, second.initiator), entry(KB, initB)), reservation: null },
    }, view);
    await step('a-reserve-transport-down', a, out24(PrOutAction.RESERVE, EA_RO), basicParams({ key: KA3 }), {
      status: GOOD,
      facts: { reservation: { key: hexKey(KA3), type: EA_RO } },
    }, view);
    inject('inject-transport-online', `${first.tpg}/transport_status`, 'online');
    // The first path now reports I_T NEXUS LOSS (a UNIT ATTENTION) and is not
    // registered (the take-over's PREEMPT removed it): resent, then repaired.
    await step('a-register-after-transport', a, out24(PrOutAction.REGISTER, 0), basicParams({ key: KA3, saKey: KA3 }), {
      status: GOOD,
      facts: { fullStatus: sorted(entry(KA3, first.initiator), entry(KA3, second.initiator, true), entry(KB, initB)) },
    }, view);
    await step('a-read-reservation', a, prIn(PrInAction.READ_RESERVATION), undefined, {
      status: GOOD,
      facts: { reservation: { key: hexKey(KA3), type: EA_RO } },
    }, (r) => {
      const rr = r.status === GOOD ? decodeReadReservation(r.data) : null;
      return { reservation: rr?.reservation ? { key: hexKey(rr.reservation.key ?? 0n), type: rr.reservation.type } : null };
    });
    // REGISTER AND MOVE (the original refuses it on maps): only the holder's nexus may
    // move the reservation, so the first path answers RESERVATION CONFLICT and the
    // daemon goes on to the second. Node B's port and TransportID as B sees them.
    const bDescriptor = decodeReadFullStatus((await b.look(PrInAction.READ_FULL_STATUS)).data).descriptors.find(
      (d) => d.transportId && initiatorName(d.transportId) === initB,
    );
    const moveParams = registerAndMoveParams({
      key: KA3,
      saKey: KB,
      relativeTargetPort: bDescriptor?.relativeTargetPort ?? 0,
      transportId: bDescriptor?.transportId ? encodeTransportId(bDescriptor.transportId) : Buffer.alloc(24),
    });
    await step('a-register-and-move', a, prOutCdb(PrOutAction.REGISTER_AND_MOVE, 0, moveParams.length), moveParams, {
      status: GOOD,
      facts: { fullStatus: sorted(entry(KA3, first.initiator), entry(KA3, second.initiator), entry(KB, initB, true)), reservation: { key: hexKey(KB), type: EA_RO } },
    }, view);
    await step('a-clear', a, out24(PrOutAction.CLEAR, 0), basicParams({ key: KA3 }), {
      status: GOOD,
      facts: { fullStatus: [], reservation: null },
    }, view);
    await step('b-read-keys-final', b, prIn(PrInAction.READ_KEYS), undefined, { status: GOOD, facts: { keys: [] } }, keys);
    appendResult(out, { step: 'scenario-end' });
    return 0;
  } catch (err) {
    appendResult(out, { step: 'scenario-error', error: (err as Error).message });
    console.error(err);
    return 1;
  } finally {
    a.close();
    b.close();
  }
}

/**
 * The daemon runs as a user that may not open the map's path nodes (-u nobody):
 * every command on the map must get a clear CHECK CONDITION (LOGICAL UNIT
 * COMMUNICATION FAILURE), never a crash or a hang.
 */
async function unprivilegedProbe(socket: string, map: string, out: string): Promise<number> {
  const a = await Node.open('A', socket, map);
  try {
    const expect: StepExpectation = { status: CHECK, sense: [0x0b, 0x08, 0x00], maxMs: 5000 };
    for (const [name, cdb, params] of [
      ['unprivileged-read-keys', prInCdb(PrInAction.READ_KEYS, 8192), undefined],
      ['unprivileged-register', prOutCdb(PrOutAction.REGISTER, 0, 24), basicParams({ saKey: KA })],
    ] as const) {
      const { reply, ms } = await a.send(cdb, params);
      const sense = reply.status === CHECK ? decodeSense(reply.sense) : null;
      appendResult(out, { step: name, node: 'A', status: reply.status, sense: sense ? [sense.key, sense.asc, sense.ascq] : null, ms: Math.round(ms), facts: {}, expect });
      console.log(`${name}: status 0x${reply.status.toString(16)} ${Math.round(ms)} ms`);
    }
    return 0;
  } finally {
    a.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
