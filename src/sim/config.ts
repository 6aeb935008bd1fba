/**
 * Simulate-mode configuration: which logical units exist and which I_T
 * nexuses (image path × initiator × target port) reach each of them.
 */
import { isAbsolute, normalize } from 'node:path';
import { parseInitiatorName, transportIdIdentity, type TransportId } from '../scsi/transport-id.js';
import { isTargetProfileName, TARGET_PROFILE_NAMES, type TargetProfileName } from './target-profile.js';

/** A configuration problem; the message is one line naming the file and the JSON location. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** One I_T nexus to a LUN, presented to QEMU as the image file `path`. */
export interface SimulationPath {
  readonly path: string;
  readonly initiatorName: string;
  readonly initiator: TransportId;
  readonly targetPort: number;
}

export interface SimulationLun {
  readonly name: string;
  readonly paths: readonly SimulationPath[];
  /** The distinct target ports of `paths`, ascending: the LUN's relative target port identifiers. */
  readonly targetPorts: readonly number[];
}

export interface SimulationConfig {
  /** Where APTPL state is kept; null when not configured. */
  readonly stateDir: string | null;
  /** Whose PR behaviour every LUN reproduces (src/sim/target-profile.ts); 'spc4' unless configured. */
  readonly profile: TargetProfileName;
  readonly luns: readonly SimulationLun[];
}

const DEFAULT_TARGET_PORT = 1;
const LUN_NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;

type Json = Record<string, unknown>;

/**
 * Parses and validates the configuration text read from `source` (used only
 * in messages). Throws ConfigError on the first problem found.
 */
export function parseSimulationConfig(text: string, source: string): SimulationConfig {
  const fail = (location: string, problem: string): never => {
    throw new ConfigError(`config ${source}: ${location === '' ? '' : `${location} `}${problem}`);
  };

  const object = (value: unknown, location: string, required: readonly string[], optional: readonly string[]): Json => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return fail(location, location === '' ? 'the top level must be a JSON object' : 'must be a JSON object');
    }
    const record = value as Json;
    const at = (key: string): string => (location === '' ? key : `${location}.${key}`);
    for (const key of Object.keys(record)) {
      if (!required.includes(key) && !optional.includes(key)) fail(at(key), 'is not a known key');
    }
    for (const key of required) {
      if (!Object.hasOwn(record, key)) fail(at(key), 'is missing');
    }
    return record;
  };

  const nonEmptyArray = (value: unknown, location: string): unknown[] =>
    Array.isArray(value) && value.length > 0 ? value : fail(location, 'must be a non-empty array');

  const absolutePath = (value: unknown, location: string): string => {
    if (typeof value !== 'string' || value.length === 0 || value.includes('\0') || !isAbsolute(value)) {
      return fail(location, 'must be an absolute path');
    }
    return normalize(value);
  };

  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (err) {
    return fail('', `is not valid JSON: ${(err as Error).message}`);
  }

  const root = object(document, '', ['luns'], ['stateDir', 'profile']);
  const stateDir = Object.hasOwn(root, 'stateDir') ? absolutePath(root['stateDir'], 'stateDir') : null;
  const profile = Object.hasOwn(root, 'profile') ? root['profile'] : 'spc4';
  if (!isTargetProfileName(profile)) fail('profile', `must be one of ${TARGET_PROFILE_NAMES.map((n) => `"${n}"`).join(', ')}`);

  const lunNames = new Map<string, string>();
  const pathOwners = new Map<string, string>();
  const luns = nonEmptyArray(root['luns'], 'luns').map((lunValue, lunIndex): SimulationLun => {
    const lunLocation = `luns[${lunIndex}]`;
    const lun = object(lunValue, lunLocation, ['name', 'paths'], []);

    const name = lun['name'];
    if (typeof name !== 'string' || !LUN_NAME_PATTERN.test(name)) {
      return fail(
        `${lunLocation}.name`,
        'must be 1-64 letters, digits, ".", "_" or "-", not starting with "." or "-" (it names the state file)',
      );
    }
    // Case-insensitively, as the name becomes a file name.
    const firstUse = lunNames.get(name.toLowerCase());
    if (firstUse !== undefined) fail(`${lunLocation}.name`, `duplicates ${firstUse}.name`);
    lunNames.set(name.toLowerCase(), lunLocation);

    const nexusOwners = new Map<string, string>();
    const paths = nonEmptyArray(lun['paths'], `${lunLocation}.paths`).map((pathValue, pathIndex): SimulationPath => {
      const location = `${lunLocation}.paths[${pathIndex}]`;
      const entry = object(pathValue, location, ['path', 'initiator'], ['targetPort']);

      const path = absolutePath(entry['path'], `${location}.path`);
      const pathOwner = pathOwners.get(path);
      if (pathOwner !== undefined) fail(`${location}.path`, `is already used by ${pathOwner}`);
      pathOwners.set(path, location);

      const initiatorName = entry['initiator'];
      if (typeof initiatorName !== 'string') return fail(`${location}.initiator`, 'must be a string');
      let initiator: TransportId;
      try {
        initiator = parseInitiatorName(initiatorName);
      } catch (err) {
        return fail(`${location}.initiator`, `is invalid: ${(err as Error).message}`);
      }

      const targetPort = Object.hasOwn(entry, 'targetPort') ? entry['targetPort'] : DEFAULT_TARGET_PORT;
      if (!Number.isInteger(targetPort) || (targetPort as number) < 1 || (targetPort as number) > 0xffff) {
        return fail(`${location}.targetPort`, 'must be an integer from 1 to 65535');
      }

      const nexus = `${transportIdIdentity(initiator)}@${targetPort as number}`;
      const nexusOwner = nexusOwners.get(nexus);
      if (nexusOwner !== undefined) {
        fail(location, `repeats the initiator and target port of ${nexusOwner} (one path per I_T nexus)`);
      }
      nexusOwners.set(nexus, location);
      return { path, initiatorName, initiator, targetPort: targetPort as number };
    });

    const targetPorts = [...new Set(paths.map((p) => p.targetPort))].sort((a, b) => a - b);
    return { name, paths, targetPorts };
  });

  return { stateDir, profile: profile as TargetProfileName, luns };
}
