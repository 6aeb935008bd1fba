import { Writable } from 'node:stream';
import { pino, type Level, type Logger } from 'pino';

export type LogFormat = 'json' | 'pretty';

/**
 * qemu-pr-helper's verbosity (pr-helper-protocol.md 4.2) on pino levels:
 * -q keeps errors only, the default shows connections and protocol
 * violations, -v adds one line per request, -vv everything.
 */
export function levelFor(verbose: number, quiet: boolean): Level {
  if (quiet) return 'error';
  if (verbose >= 2) return 'trace';
  if (verbose === 1) return 'debug';
  return 'info';
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /\s/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

/** One human line per record: time, level, message, then key=value pairs. */
export function formatPretty(line: string): string {
  const { time, level, msg, pid: _pid, hostname: _host, name: _name, ...rest } = JSON.parse(line) as Record<string, unknown>;
  const when = new Date(Number(time)).toISOString().slice(11, 23);
  const fields = Object.entries(rest).map(([k, v]) => `${k}=${formatValue(v)}`);
  return [when, (LEVEL_NAMES[Number(level)] ?? String(level)).padEnd(5), msg, ...fields].join(' ') + '\n';
}

/** Logs go to stderr like the original's messages (libvirt reports a dead helper's stderr). */
export function createLogger(options: { level: Level; format: LogFormat; stream?: NodeJS.WritableStream }): Logger {
  const target = options.stream ?? process.stderr;
  const base = { level: options.level, base: { pid: process.pid }, name: 'pr-helper' };
  if (options.format === 'json') {
    return options.stream ? pino(base, target) : pino(base, pino.destination({ fd: 2, sync: true }));
  }
  const pretty = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line) target.write(formatPretty(line));
      callback();
    },
  });
  return pino(base, pretty);
}
