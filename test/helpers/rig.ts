import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { requireRoot, requireTool } from './daemon.js';
import { REPO_ROOT } from './repo-root.js';

/** A Debian kernel image in /boot for the rig to boot (a placeholder path when none is installed). */
export function kernelImage(): string {
  const image = existsSync('/boot') ? readdirSync('/boot').find((f) => f.startsWith('vmlinuz-')) : undefined;
  return image ? join('/boot', image) : '/boot/vmlinuz-<version>';
}

export interface RigRun {
  readonly code: number | null;
  /** stdout and stderr interleaved, as the rig prints its checks and on failure the serial console. */
  readonly output: string;
}

/** Runs a host-side rig entry script, killing it shortly before `timeoutMs` so the test can report. */
export function runRigScript(script: string, env: Record<string, string>, timeoutMs: number, cwd: string): Promise<RigRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', [script], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs - 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/**
 * Whether a VM tier can run here: root (the rig VM mounts / with 9p passthrough),
 * QEMU, a Debian kernel, busybox, and the tier's own `tools` as [path, Debian
 * package]. Each missing one is a loud skip here and a failure under CI.
 */
export function rigTierReady(tier: string, tools: ReadonlyArray<readonly [string, string]>): boolean {
  return (
    requireRoot(tier, 'the rig VM mounts / with 9p security_model=passthrough') &&
    requireTool('/usr/bin/qemu-system-x86_64', 'qemu-system-x86') &&
    requireTool(kernelImage(), 'linux-image-amd64') &&
    requireTool('/bin/busybox', 'busybox-static') &&
    tools.every(([path, debianPackage]) => requireTool(path, debianPackage))
  );
}

/**
 * Runs a tier's entry script (a path below the repository root) and prints its
 * whole output when it failed (the checks and the serial console), else only the
 * lines matching `summary`.
 */
export async function runRigTier(script: string, env: Record<string, string>, timeoutMs: number, summary = /checks passed|^PASS|caches/): Promise<RigRun> {
  const result = await runRigScript(join(REPO_ROOT, script), env, timeoutMs, REPO_ROOT);
  if (result.code !== 0) console.log(result.output);
  else console.log(result.output.split('\n').filter((l) => summary.test(l)).join('\n'));
  return result;
}

/** The check lines (`ok  ` or `FAIL` first) of a tier's output whose text after that mark passes `match`. */
export function checkLines(output: string, match: (text: string) => boolean): string[] {
  return output.split('\n').filter((l) => /^(ok  |FAIL) /.test(l) && match(l.slice(5)));
}

/** At least `atLeast` check lines, and none of them FAIL. */
export function expectAllPass(lines: readonly string[], atLeast: number): void {
  expect(lines.length).toBeGreaterThanOrEqual(atLeast);
  expect(lines.filter((l) => l.startsWith('FAIL'))).toEqual([]);
}
