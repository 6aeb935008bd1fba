import { CommanderError, type Command } from 'commander';
import type { Output } from './client-command.js';

/**
 * Parses a subcommand's arguments with its commander program. null: go on
 * (read program.opts()); a number: the exit status, after printing --help or
 * a one-line usage error.
 */
export function parseSubcommandArgs(program: Command, argv: readonly string[], io: Output): number | null {
  let out = '';
  program.configureOutput({ writeOut: (s) => (out += s), writeErr: () => {} });
  try {
    program.parse([...argv], { from: 'user' });
    return null;
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    if (err.exitCode === 0) {
      io.out(out);
      return 0;
    }
    const name = program.name();
    io.err(`${name}: ${err.message.replace(/^error: /, '').trim().replace(/\n/g, ' ')}; see '${name} --help'\n`);
    return 1;
  }
}
