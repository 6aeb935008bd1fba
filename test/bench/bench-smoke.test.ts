import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { SETPRIV, PYTHON } from '../../bench/daemons.js';
import { METRICS, type MetricJson } from '../../bench/report.js';
import { QEMU_PR_HELPER, requireTool } from '../helpers/daemon.js';
import { REPO_ROOT } from '../helpers/repo-root.js';

/*
 * `npm run bench -- --quick` end to end: every metric is there and is a
 * finite number. No performance threshold is checked here (the goals are
 * printed by the benchmark, never asserted), so a slow or busy machine passes.
 */
const RUN = join(REPO_ROOT, 'dist', 'bench', 'run.js');
const haveReference = requireTool(QEMU_PR_HELPER, 'qemu-system-common');
const dir = mkdtempSync(join(tmpdir(), 'pr-bench-smoke-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface BenchJson {
  machine: { nproc: number; node: string };
  options: { reps: number; quick: boolean };
  metrics: MetricJson[];
  goals: { goal: string; value: string; pass: boolean | null }[];
  failures: string[];
}

/** Metrics that need something besides our daemon; null is right when it is missing. */
function oursNeeds(id: string): boolean {
  if (id === 'startup.ready') return existsSync(PYTHON);
  if (id === 'startup.unprivileged') return process.getuid?.() === 0 && existsSync(SETPRIV);
  return true;
}

describe('bench --quick', () => {
  it('reports every metric as a finite number', async () => {
    if (!existsSync(RUN)) throw new Error(`${RUN} missing: run \`npx tsc -p tsconfig.json\` first (npm test does)`);
    const json = join(dir, 'quick.json');
    const { stdout } = await promisify(execFile)(process.execPath, [RUN, '--quick', '--json', json], {
      cwd: REPO_ROOT,
      timeout: 240_000,
      maxBuffer: 16 << 20,
    });
    expect(stdout).toContain('Goals (informational, never asserted)');
    const out = JSON.parse(readFileSync(json, 'utf8')) as BenchJson;
    expect(out.failures).toEqual([]);
    expect(out.options).toMatchObject({ reps: 1, quick: true });
    expect(out.machine.nproc).toBeGreaterThan(0);

    expect(out.metrics.map((m) => m.id)).toEqual(METRICS.map((m) => m.id));
    for (const m of out.metrics) {
      if (oursNeeds(m.id)) expect(Number.isFinite(m.ours), `${m.id} (ours) = ${m.ours}`).toBe(true);
      else expect(m.ours, m.id).toBeNull();
      if (m.originalApplies && haveReference) {
        expect(Number.isFinite(m.original), `${m.id} (original) = ${m.original}`).toBe(true);
      } else {
        expect(m.original, `${m.id} (original)`).toBeNull();
      }
    }
    expect(out.goals.length).toBeGreaterThan(0);
    for (const g of out.goals) expect([true, false, null]).toContain(g.pass);
  }, 300_000);
});
