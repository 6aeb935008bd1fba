/**
 * A stand-in for one VM's QEMU: a process whose command line carries QEMU's
 * `-name guest=NAME,...` (which the daemon reads from /proc/PID/cmdline),
 * holding one connection to the helper and one descriptor of the disk.
 *
 *   node dist/test/helpers/qemu-like-peer.js SOCKET DISK -name guest=vmA,debug-threads=on
 *
 * Each stdin line is a command, {"out":"PREEMPT","type":1,"key":"0xb","saKey":"0xa"}
 * or {"in":"READ_KEYS"}; each answer is a stdout line {"status":N,"senseKey":K}.
 */
import { openSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { HelperClient } from '../../src/client/client.js';
import { PrInAction, PrOutAction } from '../../src/scsi/pr-codes.js';
import { basicParams, prInCdb, prOutCdb } from '../fixtures/scsi-bytes.js';
import { decodeSense } from '../../src/scsi/sense.js';

export interface PeerCommand {
  readonly out?: keyof typeof PrOutAction;
  readonly in?: keyof typeof PrInAction;
  readonly type?: number;
  readonly key?: string;
  readonly saKey?: string;
}

async function main(): Promise<void> {
  const [socket, disk] = process.argv.slice(2);
  const fd = openSync(disk!, 'r+');
  const client = await HelperClient.connect(socket!);
  for await (const line of createInterface({ input: process.stdin })) {
    const c = JSON.parse(line) as PeerCommand;
    const reply = c.out
      ? await client.execute(prOutCdb(PrOutAction[c.out], c.type ?? 0, 24), fd, basicParams({ key: BigInt(c.key ?? 0), saKey: BigInt(c.saKey ?? 0) }))
      : await client.execute(prInCdb(PrInAction[c.in!], 8192), fd);
    process.stdout.write(JSON.stringify({ status: reply.status, senseKey: decodeSense(reply.sense)?.key ?? null }) + '\n');
  }
  client.close();
}

void main();
