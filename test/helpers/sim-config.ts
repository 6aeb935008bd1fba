import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SimPath {
  readonly path: string;
  readonly initiator: string;
  readonly targetPort?: number;
}

export interface SimLun {
  readonly name: string;
  readonly paths: readonly SimPath[];
}

/**
 * Writes a --simulate configuration to `dir`/`file` with its state directory at
 * `dir`/state (created by the daemon, or by the caller when a profile needs it to
 * exist) and returns its path. `extra` adds top-level keys such as `profile`.
 */
export function writeSimConfig(dir: string, luns: readonly SimLun[], extra: Record<string, unknown> = {}, file = 'sim.json'): string {
  const config = join(dir, file);
  writeFileSync(config, JSON.stringify({ stateDir: join(dir, 'state'), ...extra, luns }));
  return config;
}
