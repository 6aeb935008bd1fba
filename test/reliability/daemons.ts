/**
 * Starting our daemon from both vitest (sources) and the compiled fuzz driver
 * (dist/test/...): test/helpers/daemon.ts derives the repository root from its
 * own location, which is one level off once compiled, so this walks up to the
 * package instead and reuses its startProcess().
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProcess, type RunningDaemon, type StartOptions } from '../helpers/daemon.js';

function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'pr-helper') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the pr-helper package root');
    dir = parent;
  }
}

export const ROOT = findRepoRoot();
/**
 * The daemon to test. PR_HELPER_ENTRY points long runs at a private snapshot
 * of dist/ (others recompile the shared tree while they work).
 */
export const ENTRY = process.env.PR_HELPER_ENTRY ?? join(ROOT, 'dist/src/cli/main.js');

const started = new Set<RunningDaemon>();

/** SIGKILL for a daemon that is still running (cleanup after a failed assertion). */
export function killIfRunning(d: RunningDaemon | null | undefined): void {
  if (d && d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill('SIGKILL');
}

// A failing test must not leave daemons behind: they would outlive the test worker.
process.on('exit', () => started.forEach(killIfRunning));

/** startProcess() whose process is killed when this process exits, whatever happened. */
export async function startTracked(command: string, args: string[], socket: string, options: StartOptions = {}): Promise<RunningDaemon> {
  const daemon = await startProcess(command, args, socket, options);
  started.add(daemon);
  void daemon.exited.then(() => started.delete(daemon));
  return daemon;
}

/** Our compiled daemon on `socket` (npm test and npm run fuzz compile first). */
export function startOurs(socket: string, args: string[] = [], options: StartOptions = {}): Promise<RunningDaemon> {
  if (!existsSync(ENTRY)) throw new Error(`${ENTRY} missing: run \`npx tsc -p tsconfig.json\``);
  return startTracked(process.execPath, [ENTRY, '-k', socket, ...args], socket, options);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `predicate` until it holds or `timeoutMs` passes; returns whether it held. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs = 5000, stepMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return true;
    if (Date.now() > deadline) return false;
    await sleep(stepMs);
  }
}
