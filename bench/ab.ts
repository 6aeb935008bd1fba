/**
 * `node dist/bench/ab.js A/dist/src/cli/main.js B/dist/src/cli/main.js
 * [--clients N] [--reps N] [--window-ms N] [--simulate] [--default-level]`: two builds of our
 * daemon under the same closed-loop load, alternating A and B, printing the
 * medians of daemon CPU per request and requests/s. For judging an
 * optimisation on a noisy machine, where one run of each says little.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createSimulatedDisk, devNullCase, measureLoad, simulatedCase, type LoadFigures } from './cases.js';
import { startDaemon } from './daemons.js';
import { LoadPool } from './load/pool.js';
import { median } from './stats.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}

async function main(): Promise<void> {
  const entries = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--'));
  if (entries.length !== 2) throw new Error('usage: ab.js ENTRY_A ENTRY_B [--clients N] [--reps N] [--window-ms N] [--simulate] [--default-level]');
  const simulate = process.argv.includes('--simulate');
  const defaultLevel = process.argv.includes('--default-level');
  const clients = flag('--clients', 16);
  const reps = flag('--reps', 7);
  const windowMs = flag('--window-ms', 2000);
  const dir = mkdtempSync(join(tmpdir(), 'pr-ab-'));
  const disk = createSimulatedDisk(dir);
  const pool = new LoadPool(2);
  const results: Record<'A' | 'B', LoadFigures[]> = { A: [], B: [] };
  try {
    for (let rep = 0; rep < reps; rep++) {
      const order: ('A' | 'B')[] = rep % 2 === 0 ? ['A', 'B'] : ['B', 'A'];
      for (const which of order) {
        const entry = resolve(entries[which === 'A' ? 0 : 1]!);
        const { daemon } = await startDaemon('ours', dir, `${which}${rep}`, { entry, args: simulate ? ['--simulate'] : [], defaultLevel });
        try {
          const c = simulate ? simulatedCase(daemon, clients, disk) : devNullCase(daemon, clients);
          const f = await measureLoad(pool, c, { warmupMs: 500, windowMs });
          results[which].push(f);
          process.stderr.write(`${which} rep ${rep + 1}: ${f.perSecond.toFixed(0)} req/s, ${f.daemonCpuUsPerRequest.toFixed(1)} µs CPU/req, p50 ${f.p50Us.toFixed(0)} µs\n`);
        } finally {
          await daemon.stop();
        }
      }
    }
  } finally {
    pool.close();
    rmSync(dir, { recursive: true, force: true });
  }
  for (const which of ['A', 'B'] as const) {
    const r = results[which];
    process.stdout.write(
      `${which}: median ${median(r.map((f) => f.perSecond)).toFixed(0)} req/s, ${median(r.map((f) => f.daemonCpuUsPerRequest)).toFixed(1)} µs CPU/req, ` +
        `p50 ${median(r.map((f) => f.p50Us)).toFixed(0)} µs, p99 ${median(r.map((f) => f.p99Us)).toFixed(0)} µs (${entries[which === 'A' ? 0 : 1]})\n`,
    );
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`ab: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
