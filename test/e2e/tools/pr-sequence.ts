// The scripted two-node PR sequence of the Tier 1 differential (and of Tier 1b): node A
// on one disk, node B on another disk that reaches the same logical unit, each with its
// own helper connection (like two QEMU processes), every raw reply recorded.
//
// Runs inside the rig VM against LIO disks (jobs/pr-differential.sh) and on the host
// against our daemon's simulated disk (run-sim-vs-lio.sh, sim-vs-lio.test.ts):
//   node dist/test/e2e/tools/pr-sequence.js --socket SOCK --disk-a DEV --disk-b DEV \
//        --label NAME --out FILE.json
// Exit 0 once every step got a reply (whatever its status), 1 on a protocol or I/O error.
// Never PREEMPT AND ABORT: it wedges tcm_loop on the rig's kernel (test-rigs.md 4.4).
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { HelperClient } from '../../../src/client/client.js';
import { PrInAction, PrOutAction } from '../../../src/scsi/pr-codes.js';
import { basicParams, EA, prInCdb, prOutCdb, WE, WE_AR, WE_RO } from '../../fixtures/scsi-bytes.js';

export type Node = 'A' | 'B';

export const KEY_A = 0xaaaa0000000000a1n;
export const KEY_B = 0xbbbb0000000000a2n;
const ALLOC = 8192;

/** What a step must produce on LIO; checked on the reference run so a broken rig cannot pass. */
export interface Expectation {
  status: number;
  /** [sense key, ASC, ASCQ] for CHECK CONDITION. */
  sense?: [number, number, number];
}

export interface Step {
  name: string;
  node: Node;
  cdb: Buffer;
  params: Buffer;
  expect?: Expectation;
  /** Part of the tail that probes LIO's documented quirks (spc4-pr-semantics.md §8). */
  quirkProbe?: boolean;
}

export interface RecordedReply {
  name: string;
  node: Node;
  cdb: string;
  params: string;
  status: number;
  /** All 96 sense bytes as the helper sent them. */
  sense: string;
  data: string;
  /** Round trip through the helper; left out of the fixture. */
  ms?: number;
}

export interface Recording {
  label: string;
  /** Versions and rig the recording was made with (the kept fixture says). */
  environment?: Record<string, string>;
  socket: string;
  disks: Record<Node, string>;
  startedAt: string;
  replies: RecordedReply[];
}

const GOOD: Expectation = { status: 0x00 };
const CONFLICT: Expectation = { status: 0x18 };
const ua = (asc: number, ascq: number): Expectation => ({ status: 0x02, sense: [0x06, asc, ascq] });

const prIn = (name: string, node: Node, action: number, expect?: Expectation, alloc = ALLOC): Step => ({
  name, node, cdb: prInCdb(action, alloc), params: Buffer.alloc(0), ...(expect ? { expect } : {}),
});
const prOut = (name: string, node: Node, action: number, type: number, key: bigint, saKey: bigint, expect?: Expectation): Step => ({
  name, node, cdb: prOutCdb(action, type, 24), params: basicParams({ key, saKey }), ...(expect ? { expect } : {}),
});

/** The two-node scenario, further spec coverage, then the quirk probes; starts and ends with no registrations. */
export function prSequence(): Step[] {
  const main: Step[] = [
    prOut('a-register', 'A', PrOutAction.REGISTER, 0, 0n, KEY_A, GOOD),
    prOut('b-register', 'B', PrOutAction.REGISTER, 0, 0n, KEY_B, GOOD),
    prIn('a-read-keys', 'A', PrInAction.READ_KEYS, GOOD),
    prOut('a-reserve-we-ro', 'A', PrOutAction.RESERVE, WE_RO, KEY_A, 0n, GOOD),
    prOut('b-reserve-conflict', 'B', PrOutAction.RESERVE, WE_RO, KEY_B, 0n, CONFLICT),
    prIn('b-read-reservation', 'B', PrInAction.READ_RESERVATION, GOOD),
    prIn('a-report-capabilities', 'A', PrInAction.REPORT_CAPABILITIES, GOOD),
    prIn('b-read-full-status', 'B', PrInAction.READ_FULL_STATUS, GOOD),
    prOut('b-preempt-a', 'B', PrOutAction.PREEMPT, WE_RO, KEY_B, KEY_A, GOOD),
    prIn('a-read-keys-unit-attention', 'A', PrInAction.READ_KEYS, ua(0x2a, 0x05)), // REGISTRATIONS PREEMPTED
    prIn('a-read-keys-after-preempt', 'A', PrInAction.READ_KEYS, GOOD),
    prOut('a-register-again', 'A', PrOutAction.REGISTER, 0, 0n, KEY_A, GOOD),
    prIn('a-read-full-status', 'A', PrInAction.READ_FULL_STATUS, GOOD),
    prOut('b-release', 'B', PrOutAction.RELEASE, WE_RO, KEY_B, 0n, GOOD),
    prIn('a-read-reservation-unit-attention', 'A', PrInAction.READ_RESERVATION, ua(0x2a, 0x04)), // RESERVATIONS RELEASED
    prIn('a-read-reservation', 'A', PrInAction.READ_RESERVATION, GOOD),
    prOut('a-clear', 'A', PrOutAction.CLEAR, 0, KEY_A, 0n, GOOD),
    prIn('b-read-keys-unit-attention', 'B', PrInAction.READ_KEYS, ua(0x2a, 0x03)), // RESERVATIONS PREEMPTED
    prIn('b-read-keys-after-clear', 'B', PrInAction.READ_KEYS, GOOD),
  ];
  // More of the spec where LIO follows it, for Tier 1b: REGISTER AND IGNORE EXISTING KEY,
  // an all-registrants reservation (key 0, every registrant a holder, PREEMPT with
  // SARK 0), key changes, RELEASE by a non-holder, PREEMPT SARK 0 without AR.
  const KEY_A2 = KEY_A + 0x100n;
  const KEY_B2 = KEY_B + 0x100n;
  const coverage: Step[] = [
    prOut('a-register-ignore-existing', 'A', PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, 0, 0x1234n, KEY_A, GOOD),
    prOut('b-register-2', 'B', PrOutAction.REGISTER, 0, 0n, KEY_B, GOOD),
    prOut('a-reserve-we-ar', 'A', PrOutAction.RESERVE, WE_AR, KEY_A, 0n, GOOD),
    prIn('b-read-reservation-ar', 'B', PrInAction.READ_RESERVATION, GOOD),
    prIn('b-read-full-status-ar', 'B', PrInAction.READ_FULL_STATUS, GOOD),
    prOut('b-reserve-we-ar-as-holder', 'B', PrOutAction.RESERVE, WE_AR, KEY_B, 0n, GOOD),
    prOut('a-change-key', 'A', PrOutAction.REGISTER, 0, KEY_A, KEY_A2, GOOD),
    prOut('b-preempt-all-registrants', 'B', PrOutAction.PREEMPT, WE, KEY_B, 0n, GOOD),
    prIn('a-read-keys-unit-attention-2', 'A', PrInAction.READ_KEYS, ua(0x2a, 0x05)),
    prIn('b-read-reservation-we', 'B', PrInAction.READ_RESERVATION, GOOD),
    prOut('a-register-3', 'A', PrOutAction.REGISTER, 0, 0n, KEY_A, GOOD),
    prOut('a-release-not-holder', 'A', PrOutAction.RELEASE, WE, KEY_A, 0n, GOOD),
    prOut('a-preempt-sark-0', 'A', PrOutAction.PREEMPT, WE, KEY_A, 0n, { status: 0x02, sense: [0x05, 0x26, 0x00] }),
    prOut('b-change-key-as-holder', 'B', PrOutAction.REGISTER, 0, KEY_B, KEY_B2, GOOD),
    prIn('a-read-reservation-new-key', 'A', PrInAction.READ_RESERVATION, GOOD),
    prIn('a-read-full-status-2', 'A', PrInAction.READ_FULL_STATUS, GOOD),
    prOut('b-clear', 'B', PrOutAction.CLEAR, 0, KEY_B2, 0n, GOOD),
    prIn('a-read-keys-unit-attention-3', 'A', PrInAction.READ_KEYS, ua(0x2a, 0x03)),
    prIn('a-read-keys-after-clear', 'A', PrInAction.READ_KEYS, GOOD),
  ];
  // Where LIO is known to depart from the spec (spc4-pr-semantics.md §8): recorded like
  // the rest, not asserted here; Tier 1b pins what the simulator does instead.
  const reserveScope1 = prOut('q-a-reserve-scope-1', 'A', PrOutAction.RESERVE, WE, KEY_A, 0n);
  reserveScope1.cdb[2] = 0x10 | WE; // SCOPE 1 (obsolete element scope)
  const tail: Step[] = [
    prOut('q-b-reserve-unregistered', 'B', PrOutAction.RESERVE, WE, KEY_B, 0n),
    prIn('q-a-read-keys-alloc-4', 'A', PrInAction.READ_KEYS, undefined, 4),
    prOut('q-a-register', 'A', PrOutAction.REGISTER, 0, 0n, KEY_A, GOOD),
    reserveScope1,
    prOut('q-a-reserve-we', 'A', PrOutAction.RESERVE, WE, KEY_A, 0n, GOOD),
    prOut('q-a-release-wrong-type', 'A', PrOutAction.RELEASE, EA, KEY_A, 0n),
    prOut('q-a-release', 'A', PrOutAction.RELEASE, WE, KEY_A, 0n, GOOD),
    prOut('q-a-unregister', 'A', PrOutAction.REGISTER, 0, KEY_A, 0n, GOOD),
    prIn('q-b-read-keys', 'B', PrInAction.READ_KEYS, GOOD),
  ].map((s) => ({ ...s, quirkProbe: true }));
  return [...main, ...coverage, ...tail];
}

/** Runs the sequence through the helper on `socket`; a protocol failure throws. */
export async function runSequence(socket: string, disks: Record<Node, string>, label: string): Promise<Recording> {
  const recording: Recording = { label, socket, disks, startedAt: new Date().toISOString(), replies: [] };
  const fds: Record<Node, number> = { A: -1, B: -1 };
  const clients: Partial<Record<Node, HelperClient>> = {};
  try {
    // O_RDWR like QEMU; the helper refuses PR OUT on a read-only descriptor.
    fds.A = openSync(disks.A, 'r+');
    fds.B = openSync(disks.B, 'r+');
    clients.A = await HelperClient.connect(socket);
    clients.B = await HelperClient.connect(socket);
    for (const step of prSequence()) {
      const t0 = Date.now();
      const reply = await clients[step.node]!.execute(step.cdb, fds[step.node], step.params);
      recording.replies.push({
        name: step.name,
        node: step.node,
        cdb: step.cdb.toString('hex'),
        params: step.params.toString('hex'),
        status: reply.status,
        sense: reply.sense.toString('hex'),
        data: reply.data.toString('hex'),
        ms: Date.now() - t0,
      });
    }
  } finally {
    clients.A?.close();
    clients.B?.close();
    for (const fd of Object.values(fds)) if (fd >= 0) closeSync(fd);
  }
  return recording;
}

async function main(): Promise<void> {
  const { values: opt } = parseArgs({
    options: {
      socket: { type: 'string' },
      'disk-a': { type: 'string' },
      'disk-b': { type: 'string' },
      label: { type: 'string', default: 'run' },
      out: { type: 'string' },
    },
  });
  if (!opt.socket || !opt['disk-a'] || !opt['disk-b'] || !opt.out) {
    console.error('usage: pr-sequence.js --socket SOCK --disk-a DEV --disk-b DEV --out FILE.json [--label NAME]');
    process.exit(2);
  }
  const recording = await runSequence(opt.socket, { A: opt['disk-a'], B: opt['disk-b'] }, opt.label);
  writeFileSync(opt.out, `${JSON.stringify(recording, null, 1)}\n`);
  for (const r of recording.replies) {
    const sense = r.status === 0x02 ? ` sense ${r.sense.slice(0, 36)}` : '';
    console.log(`  ${r.node} ${r.name.padEnd(36)} status 0x${r.status.toString(16).padStart(2, '0')}${sense} data ${r.data || '-'} (${r.ms} ms)`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(`pr-sequence: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  });
}
