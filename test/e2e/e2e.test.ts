import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DAEMON_ENTRY, QEMU_PR_HELPER } from '../helpers/daemon.js';
import { REPO_ROOT } from '../helpers/repo-root.js';
import { rigTierReady, runRigScript, type RigRun } from '../helpers/rig.js';

/*
 * The end-to-end tiers 1, 1b and 2 (test/e2e/run-all.sh) with our daemon as the helper:
 * LIO disks in a TCG VM, real SG_IO, real QEMU as the client. About 2 minutes on the
 * project's 2-core machine. Needs root (9p passthrough), QEMU, qemu-pr-helper and a
 * Debian kernel in /boot: missing ones skip loudly here, but fail under CI.
 */
const RUN_ALL = join(REPO_ROOT, 'test/e2e/run-all.sh');
const TIMEOUT_MS = 6 * 60_000;

const ready = rigTierReady('the e2e tiers', [
  [QEMU_PR_HELPER, 'qemu-system-common'],
  ['/usr/bin/sg_persist', 'sg3-utils'],
]);

interface RunAll extends RigRun {
  /** Tier name -> PASS/FAIL, from run-all.sh's summary lines. */
  tiers: Map<string, string>;
}

async function runAll(): Promise<RunAll> {
  // Our daemon, whatever the caller's environment says.
  const { code, output } = await runRigScript(RUN_ALL, { HELPER_CMD: `${process.execPath} ${DAEMON_ENTRY}` }, TIMEOUT_MS, REPO_ROOT);
  const tiers = new Map<string, string>();
  for (const m of output.matchAll(/^TIER (\S+)\s+(PASS|FAIL)\b/gm)) tiers.set(m[1]!, m[2]!);
  return { code, output, tiers };
}

describe.skipIf(!ready)('end to end: LIO in a VM, our daemon, real QEMU (run-all.sh)', () => {
  let result: RunAll;

  beforeAll(async () => {
    result = await runAll();
    // The whole log when anything failed: the rig prints the serial console and the checks.
    if (result.code !== 0) console.log(result.output);
    else console.log(result.output.slice(result.output.indexOf('==== summary')));
  }, TIMEOUT_MS);

  it('tier 1: replies through our daemon are byte-identical to qemu-pr-helper\'s on LIO', () => {
    expect(result.tiers.get('1')).toBe('PASS');
  });

  it('tier 1b: our simulated disk answers like LIO except for the pinned LIO quirks', () => {
    expect(result.tiers.get('1b')).toBe('PASS');
  });

  it('tier 2: a real QEMU works through our daemon, across a daemon kill and restart', () => {
    expect(result.tiers.get('2')).toBe('PASS');
  });

  it('run-all.sh exits 0', () => {
    expect(result.code).toBe(0);
  });
});
