/**
 * Long-form protocol fuzzing: `npm run fuzz -- [--frames N] [--seed S]
 * [--differential] [--concurrency C] [--batch B]`.
 *
 * Generates N frames (default 1,000,000) of random and mutated client traffic
 * (frames.ts) and sends them to our daemon in SG_IO mode under the fake SCSI
 * target and in simulated mode; with --differential, a further share of
 * cases (plain descriptors and scripted fake devices) goes to both a second
 * SG_IO daemon of ours and /usr/bin/qemu-pr-helper, both under the fake
 * target, which must close at the same point and send the same bytes. Invariants are checked per case and after every batch (see
 * fuzz-harness.ts). Exit status 0 only if no invariant was violated.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseSeed } from './prng.js';
import {
  newStats,
  QEMU_PR_HELPER,
  runBatch,
  runDifferential,
  setUpFuzzEnvironment,
  warmUp,
  type SessionStats,
} from './fuzz-harness.js';

interface Args {
  frames: number;
  seed: number;
  differential: boolean;
  concurrency: number;
  batch: number;
  maxFailures: number;
}

function usage(message: string): never {
  process.stderr.write(`fuzz: ${message}\nusage: npm run fuzz -- [--frames N] [--seed S] [--differential] [--concurrency C] [--batch CASES] [--max-failures F]\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): Args {
  const args: Args = { frames: 1_000_000, seed: Date.now() >>> 0, differential: false, concurrency: 8, batch: 2000, maxFailures: 50 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    const int = (): number => {
      const v = value().replace(/[_,]/g, '');
      if (!/^\d+$/.test(v)) usage(`${a} needs a number`);
      return Number(v);
    };
    if (a === '--frames') args.frames = int();
    else if (a === '--seed') args.seed = parseSeed(value());
    else if (a === '--differential') args.differential = true;
    else if (a === '--concurrency') args.concurrency = Math.max(1, int());
    else if (a === '--batch') args.batch = Math.max(1, int());
    else if (a === '--max-failures') args.maxFailures = int();
    else usage(`unknown argument ${a}`);
  }
  return args;
}

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? -1);
}

function summary(stats: SessionStats, started: number): string {
  const secs = (Date.now() - started) / 1000;
  return `frames ${stats.frames} cases ${stats.cases + stats.differentialCases} (differential ${stats.differentialCases}) requests ${stats.requests} replies ${stats.replies} sgio-calls ${stats.sgioCalls} failures ${stats.failures.length} | ${secs.toFixed(0)} s, ${(stats.frames / secs).toFixed(0)} frames/s`;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.differential && !existsSync(QEMU_PR_HELPER)) usage(`--differential needs ${QEMU_PR_HELPER} (Debian package qemu-system-common)`);
  process.stdout.write(`fuzz: seed ${args.seed} (reproduce with --seed ${args.seed}), ${args.frames} frames${args.differential ? ', differential' : ''}\n`);
  const env = await setUpFuzzEnvironment({ differential: args.differential });
  const stats = newStats();
  const started = Date.now();
  let exits: Array<{ name: string; exit: number | string }> = [];
  let rss = '';
  try {
    await warmUp(env, args.seed);
    const streams = args.differential ? 3 : 2;
    // Each stream draws its own cases from (seed, stream) so a failure is reproducible by index.
    const nextIndex = [0, 0, 0];
    let turn = 0;
    let lastReport = Date.now();
    while (stats.frames < args.frames && stats.failures.length < args.maxFailures) {
      const stream = turn++ % streams;
      const seed = (args.seed + stream * 0x9e3779b1) >>> 0;
      if (stream < 2) {
        await runBatch(env.targets[stream]!, { seed, firstIndex: nextIndex[stream]!, count: args.batch, concurrency: args.concurrency }, stats);
        nextIndex[stream]! += args.batch;
      } else {
        const count = Math.max(1, Math.floor(args.batch / 4));
        await runDifferential(env.differential!, { seed, firstIndex: nextIndex[stream]!, count, concurrency: 1 }, stats);
        nextIndex[stream]! += count;
      }
      if (Date.now() - lastReport > 10_000) {
        process.stdout.write(`fuzz: ${summary(stats, started)}\n`);
        lastReport = Date.now();
      }
    }
    rss = env.targets.map((t) => `${t.name} ${rssKiB(t.daemon.proc.pid!)} KiB`).join(', ');
  } finally {
    exits = await env.close();
  }
  for (const e of exits) {
    if (e.exit !== 0) stats.failures.push({ target: e.name, seed: args.seed, index: -1, problems: [`exit status ${e.exit} after SIGTERM`] });
  }
  for (const f of stats.failures.slice(0, args.maxFailures)) {
    process.stdout.write(`FAIL [${f.target}] seed ${f.seed} case ${f.index}\n  ${f.problems.join('\n  ')}\n`);
  }
  process.stdout.write(`fuzz: closes by cause ${JSON.stringify(stats.closes)}; daemon RSS at the end: ${rss}\n`);
  process.stdout.write(`fuzz: ${stats.failures.length === 0 ? 'OK' : 'FAILED'}: ${summary(stats, started)}; daemons exited ${exits.map((e) => `${e.name}=${e.exit}`).join(' ')}\n`);
  return stats.failures.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`fuzz: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(2);
  },
);
