/**
 * How one pino record (a JSON line) is written out: as it is, as a human
 * line, and with the syslog priority prefix journald reads from a stream.
 */

export type LogFormat = 'json' | 'pretty';

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /\s/.test(value) || value === '' ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

/**
 * One human line per record: time (unless the destination stamps its own),
 * level, message, then key=value pairs.
 */
export function formatPretty(line: string, withTime = true): string {
  const { time, level, msg, pid: _pid, hostname: _host, name: _name, ...rest } = JSON.parse(line) as Record<string, unknown>;
  const fields = Object.entries(rest).map(([k, v]) => `${k}=${formatValue(v)}`);
  const head = [(LEVEL_NAMES[Number(level)] ?? String(level)).padEnd(5), msg];
  if (withTime) head.unshift(new Date(Number(time)).toISOString().slice(11, 23));
  return [...head, ...fields].join(' ') + '\n';
}

/**
 * The syslog priority (RFC 5424 severity) of a pino level: what journald
 * files a stream line under when it starts with `<N>` (sd-daemon(3)), so that
 * `journalctl -p warning` finds warnings and errors.
 */
export function syslogPriority(level: number): number {
  if (level >= 60) return 2; // crit
  if (level >= 50) return 3; // err
  if (level >= 40) return 4; // warning
  if (level >= 30) return 6; // info
  return 7; // debug
}
