/**
 * Test entry: the real daemon (runDaemon, SG_IO backend, real native SG_IO on
 * worker threads) with the multipath layer pointed at a fake sysfs tree and a
 * fake device directory, for test/backend/multipath.socket.test.ts. Run under
 * the LD_PRELOAD fake SCSI target (test/fake-target), whose "devices" are
 * regular files; MPATH_FAKE_IDS says which block device each of them stands
 * for, since regular files have no st_rdev.
 *
 *   MPATH_FAKE_SYSFS  sysfs root      MPATH_FAKE_DEV  directory of the path nodes
 *   MPATH_FAKE_IDS    JSON {"<file name>": "MAJ:MIN", ...}
 *   arguments         the daemon's own (-k SOCKET, ...)
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import type { DeviceIdentity } from '../../../src/backend/multipath.js';
import { SgioBackend } from '../../../src/backend/sgio-backend.js';
import { parseArguments } from '../../../src/cli/options.js';
import { runDaemon } from '../../../src/daemon/run.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const ids = JSON.parse(readFileSync(env('MPATH_FAKE_IDS'), 'utf8')) as Record<string, string>;

function identify(fd: number): DeviceIdentity | null {
  let name: string;
  try {
    name = basename(readlinkSync(`/proc/self/fd/${fd}`));
  } catch {
    return null;
  }
  const id = ids[name];
  if (!id) return { block: false, major: 0, minor: 0 };
  const [major, minor] = id.split(':').map(Number) as [number, number];
  return { block: true, major, minor };
}

const parsed = parseArguments(process.argv.slice(2), '0.0.0-multipath-test');
if (parsed.kind === 'exit') {
  process.stderr.write(parsed.stderr ?? '');
  process.exit(parsed.code);
}
runDaemon(parsed.options, async (options, log) =>
  new SgioBackend({
    timeoutMs: options.sgioTimeoutMs,
    log,
    allowPartialDevices: options.allowPartialDevices,
    maxCommands: options.maxSgioCommands,
    maxDeviceCommands: options.maxDeviceCommands,
    multipath: { sysfsRoot: env('MPATH_FAKE_SYSFS'), devRoot: env('MPATH_FAKE_DEV'), identify },
  }),
).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`multipath-fake-daemon: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
