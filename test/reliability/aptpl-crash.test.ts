// kill -9 during APTPL state writes. The simulated disk writes the state
// (temporary file, fsync, rename, fsync directory) before it answers, so after
// SIGKILL at any moment the state file must parse and hold either the last
// acknowledged state or the one being written, and a restarted daemon must
// report exactly that state.
//
// 100 iterations by default; PR_HELPER_KILL9_ITERATIONS=1000 for the long form.
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HelperClient } from '../../src/client/client.js';
import { PrInAction, PrOutAction } from '../../src/scsi/pr-codes.js';
import { basicParams, prInCdb, prOutCdb } from '../fixtures/scsi-bytes.js';
import { Prng } from './prng.js';
import { killIfRunning, type RunningDaemon, startDaemon } from '../helpers/daemon.js';
import { sleep } from '../helpers/wait.js';

const ITERATIONS = Number(process.env.PR_HELPER_KILL9_ITERATIONS ?? 100);
const dir = mkdtempSync(join(tmpdir(), 'rel-kill9-'));
const stateDir = join(dir, 'state');
const disk = join(dir, 'disk.img');
const config = join(dir, 'sim.json');
const stateFile = join(stateDir, 'crash.pr-state.json');
writeFileSync(disk, Buffer.alloc(4096));
writeFileSync(config, JSON.stringify({ stateDir, luns: [{ name: 'crash', paths: [{ path: disk, initiator: 'iqn.2024-01.test:crash' }] }] }));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function temporaries(): string[] {
  try {
    return readdirSync(stateDir).filter((n) => n.includes('.tmp-'));
  } catch {
    return [];
  }
}

interface KeyState {
  generation: number;
  keys: string[];
}

async function readKeys(client: HelperClient, fd: number): Promise<KeyState> {
  const reply = await client.execute(prInCdb(PrInAction.READ_KEYS, 8192), fd);
  expect(reply.status).toBe(0);
  const length = reply.data.readUInt32BE(4);
  const keys: string[] = [];
  for (let o = 8; o < 8 + length; o += 8) keys.push(reply.data.subarray(o, o + 8).toString('hex'));
  return { generation: reply.data.readUInt32BE(0), keys };
}

/** The state file as the daemon left it: null if absent; throws if torn or malformed. */
function fileState(): KeyState | null {
  let text: string;
  try {
    text = readFileSync(stateFile, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const state = JSON.parse(text) as { version: number; generation: number; aptpl: boolean; registrations: Array<{ key: string }> };
  expect(state.version).toBe(1);
  expect(state.aptpl).toBe(true);
  return { generation: state.generation, keys: state.registrations.map((r) => r.key.padStart(16, '0')) };
}

describe('kill -9 during APTPL state writes', () => {
  it(`${ITERATIONS} SIGKILLs at random moments leave the previous or the new state, and a restart restores it`, async () => {
    const r = new Prng(0xc0ffee);
    const fd = openSync(disk, 'r+');
    let key = 0n;
    let inTheMiddle = 0;
    let leftovers = 0;
    let current: RunningDaemon | null = null;
    try {
      for (let i = 0; i < ITERATIONS; i++) {
        const daemon = await startDaemon(join(dir, 'h.sock'), ['-q', '--simulate', config]);
        current = daemon;
        const client = await HelperClient.connect(daemon.socket);
        // The restarted daemon reports exactly what the file holds.
        const onDisk = fileState();
        const restored = await readKeys(client, fd);
        if (onDisk) expect(restored).toEqual(onDisk);
        else expect(restored).toEqual({ generation: 0, keys: [] });
        // A crashed save's temporary files were removed when the LUN was loaded.
        expect(temporaries()).toEqual([]);

        let acked: KeyState = restored;
        let inFlight: KeyState | null = null;
        let killed = false;
        const killAfter = r.range(0, 60);
        const timer = setTimeout(() => {
          killed = true;
          daemon.proc.kill('SIGKILL');
        }, killAfter);
        try {
          while (!killed) {
            key = (key + 1n + BigInt(r.int(1000))) & 0xffffffffffffn;
            const next = { generation: acked.generation + 1, keys: [key.toString(16).padStart(16, '0')] };
            inFlight = next;
            const cdb = prOutCdb(PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, 0, 24);
            const reply = await client.execute(cdb, fd, basicParams({ saKey: key, aptpl: true }));
            expect(reply.status).toBe(0);
            acked = next;
            inFlight = null;
          }
        } catch (err) {
          // Only the kill may interrupt the loop.
          if (!killed) throw err;
        } finally {
          clearTimeout(timer);
          client.close();
        }
        expect(await daemon.exited).toBe('SIGKILL');

        const after = fileState();
        const allowed = [acked, ...(inFlight ? [inFlight] : [])];
        if (acked.keys.length === 0 && after === null) continue;
        expect(allowed).toContainEqual(after);
        if (inFlight && after && after.generation === inFlight.generation) inTheMiddle++;
        if (temporaries().length > 0) leftovers++;
      }
    } finally {
      killIfRunning(current);
      closeSync(fd);
    }
    // Make sure the kills really landed while writes were in progress now and then.
    console.log(`kill -9 x${ITERATIONS}: new state already on disk when killed mid-command ${inTheMiddle} times, temporary file left ${leftovers} times`);
    await sleep(0);
  }, Math.max(120_000, ITERATIONS * 1500));
});
