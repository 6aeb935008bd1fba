import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

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
