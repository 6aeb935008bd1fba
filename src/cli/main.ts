#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { runDaemon } from '../daemon/run.js';
import { parseArguments } from './options.js';

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  // qemu-pr-helper ignores positional words and its callers (libvirt, units) start
  // with options, so a leading word is free to select a subcommand. Loaded
  // lazily so the daemon does not pay for them.
  if (argv[0] === 'client') return (await import('./client-command.js')).runClientCommand(argv.slice(1));
  if (argv[0] === 'check') return (await import('./check-command.js')).runCheckCommand(argv.slice(1));
  if (argv[0] === 'status') return (await import('./status-command.js')).runStatusCommand(argv.slice(1));
  const parsed = parseArguments(argv, packageVersion());
  if (parsed.kind === 'exit') {
    if (parsed.stdout) process.stdout.write(parsed.stdout);
    if (parsed.stderr) process.stderr.write(parsed.stderr);
    return parsed.code;
  }
  return runDaemon(parsed.options);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`pr-helper: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
