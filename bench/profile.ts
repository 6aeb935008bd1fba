/**
 * `node dist/bench/profile.js [--simulate] [--clients N] [--seconds S]`:
 * runs our daemon under `node --cpu-prof` with the benchmark's load, then
 * prints where its JavaScript thread spent the time (self time by function,
 * and by file). The .cpuprofile is kept for Chrome DevTools / speedscope.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { REPO_ROOT } from '../test/helpers/repo-root.js';
import { nowMs } from './clock.js';
import { createSimulatedDisk, devNullCase, measureLoad, simulatedCase } from './cases.js';
import { startDaemon } from './daemons.js';
import { LoadPool } from './load/pool.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}

function shortUrl(url: string): string {
  if (!url) return '';
  const path = url.replace(/^file:\/\//, '');
  return path.startsWith(REPO_ROOT) ? relative(REPO_ROOT, path) : path.replace(/^.*node_modules\//, '');
}

function top(map: Map<string, number>, total: number, n: number): string {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `  ${((100 * v) / total).toFixed(1).padStart(5)}%  ${(v / 1000).toFixed(0).padStart(7)} ms  ${k}`)
    .join('\n');
}

async function main(): Promise<void> {
  const simulate = process.argv.includes('--simulate');
  const clients = arg('--clients', 16);
  const seconds = arg('--seconds', 5);
  const dir = mkdtempSync(join(tmpdir(), 'pr-profile-'));
  const profDir = join(dir, 'prof');
  const pool = new LoadPool(2);
  const { daemon } = await startDaemon('ours', dir, 'profiled', {
    args: simulate ? ['--simulate'] : [],
    defaultLevel: process.argv.includes('--default-level'),
    nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`],
  });
  try {
    const c = simulate ? simulatedCase(daemon, clients, createSimulatedDisk(dir)) : devNullCase(daemon, clients);
    const f = await measureLoad(pool, c, { warmupMs: 1000, windowMs: seconds * 1000 });
    process.stdout.write(`${simulate ? 'simulated' : '/dev/null'}, ${clients} clients: ${f.perSecond.toFixed(0)} req/s, daemon ${f.daemonCpuUsPerRequest.toFixed(1)} µs CPU/req\n`);
  } finally {
    await daemon.stop();
    pool.close();
  }
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no profile written in ${profDir}`);
  const profile = JSON.parse(readFileSync(join(profDir, file), 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const frame = byId.get(id)!.callFrame;
    const where = shortUrl(frame.url);
    const fn = `${frame.functionName || '(anonymous)'}${where ? `  ${where}:${frame.lineNumber + 1}` : ''}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    const fileKey = where || frame.functionName;
    byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + us);
    total += us;
  }
  process.stdout.write(`\nself time by function (${(total / 1000).toFixed(0)} ms sampled):\n${top(byFunction, total, 30)}\n`);
  process.stdout.write(`\nself time by file:\n${top(byFile, total, 15)}\n\nprofile: ${join(profDir, file)} (${nowMs().toFixed(0)})\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`profile: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
