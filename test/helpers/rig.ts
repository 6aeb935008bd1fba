import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The VM rig mounts / with 9p security_model=passthrough, which needs root.
 * Like requireTool: a loud skip on a developer machine, a failure under CI.
 */
export function requireRoot(what: string): boolean {
  if (process.getuid?.() === 0) return true;
  const message = `${what} needs root (the rig VM mounts / with 9p security_model=passthrough)`;
  if (process.env.CI) throw new Error(message);
  console.warn(`SKIPPING: ${message}`);
  return false;
}

/** A Debian kernel image in /boot for the rig to boot (a placeholder path when none is installed). */
export function kernelImage(): string {
  const image = existsSync('/boot') ? readdirSync('/boot').find((f) => f.startsWith('vmlinuz-')) : undefined;
  return image ? join('/boot', image) : '/boot/vmlinuz-<version>';
}
