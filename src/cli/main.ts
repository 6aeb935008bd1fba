#!/usr/bin/env node
import './ignore-debug-signal.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InstallationError, PACKAGE_ROOT, untrustedCode } from '../installation.js';
import { parseArguments, PROGRAM } from './options.js';

// Node sets comm (prctl PR_SET_NAME) and rewrites the command line, so
// pidof, pgrep -x and ps show pr-helper rather than node, in every mode.
process.title = PROGRAM;

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  if (process.geteuid?.() === 0) {
    const reason = untrustedCode(PACKAGE_ROOT);
    if (reason !== null) throw new InstallationError(`refusing to run as root: ${reason}, so others could change the code`);
  }
  // qemu-pr-helper ignores positional words and its callers (libvirt, units) start
  // with options, so a leading word is free to select a subcommand. Loaded
  // lazily so the daemon does not pay for them, and the daemon itself only
  // after parsing: -V and --help work without the native addon.
  if (argv[0] === 'client') return (await import('./client-command.js')).runClientCommand(argv.slice(1));
  if (argv[0] === 'check') return (await import('./check-command.js')).runCheckCommand(argv.slice(1));
  if (argv[0] === 'sg_persist') return (await import('./sg-persist-command.js')).runSgPersistCommand(argv.slice(1));
  if (argv[0] === 'validate') return (await import('./validate-command.js')).runValidateCommand(argv.slice(1));
  if (argv[0] === 'status') return (await import('./status-command.js')).runStatusCommand(argv.slice(1));
  const parsed = parseArguments(argv, packageVersion());
  if (parsed.kind === 'exit') {
    if (parsed.stdout) process.stdout.write(parsed.stdout);
    if (parsed.stderr) process.stderr.write(parsed.stderr);
    return parsed.code;
  }
  return (await import('../daemon/run.js')).runDaemon(parsed.options);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // A damaged install is the operator's to repair: its one line says how.
    const text = err instanceof InstallationError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`${PROGRAM}: ${text}\n`);
    process.exit(1);
  },
);
