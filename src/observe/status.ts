/**
 * What `pr-helper status` shows: the document the daemon sends and its text
 * form. Pure: the daemon fills it in, the status command prints it.
 */
import type { ConnectionView } from '../server/connection.js';
import type { Counters } from './monitor.js';

export interface StatusDocument {
  readonly pid: number;
  readonly startedAt: string;
  readonly uptimeSeconds: number;
  readonly backend: string;
  readonly socket: string;
  /** Where the log goes ("stderr", "journald (stderr)", a file). */
  readonly log: string;
  readonly metrics: string | null;
  readonly counters: Counters & { readonly logLinesDropped: number };
  readonly inFlight: { readonly count: number; readonly oldestSeconds: number };
  readonly connections: readonly ConnectionView[];
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.floor(seconds);
  const parts = [Math.floor(s / 86400), Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60, s % 60];
  const units = ['d', 'h', 'm', 's'];
  const first = parts.findIndex((p) => p > 0);
  return parts
    .slice(first)
    .map((p, i) => `${p}${units[first + i]}`)
    .join(' ');
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  '));
}

function executing(view: ConnectionView): string {
  const e = view.executing;
  if (!e) return '-';
  const device = e.dev ? `${e.dev}${e.devno ? ` (${e.devno})` : ''}` : (e.file ?? e.devno ?? 'an unknown device');
  return `${e.op} ${e.action} on ${device} for ${formatDuration(e.seconds)}`;
}

/** The human form of a status document. */
export function formatStatus(doc: StatusDocument): string {
  const c = doc.counters;
  const lines = [
    `pr-helper pid ${doc.pid}, up ${formatDuration(doc.uptimeSeconds)} (since ${doc.startedAt})`,
    `backend ${doc.backend}; socket ${doc.socket}; log ${doc.log}${doc.metrics ? `; metrics ${doc.metrics}` : ''}`,
    `requests ${c.requests}: failures ${c.failures}, reservation conflicts ${c.reservationConflicts}, SG_IO errors ${c.sgioErrors}, timeouts ${c.timeouts}`,
    `connections ${doc.connections.length} open, ${c.connectionsAccepted} accepted, refused ${c.refusedAllowList} by the allow list and ${c.refusedConnectionLimit} by the limit; log lines dropped ${c.logLinesDropped}`,
    `in flight ${doc.inFlight.count}${doc.inFlight.count > 0 ? `, the oldest for ${formatDuration(doc.inFlight.oldestSeconds)}` : ''}`,
  ];
  if (doc.connections.length > 0) {
    const rows = [['CONN', 'PID', 'UID', 'VM', 'PROGRAM', 'REQUESTS', 'EXECUTING']];
    for (const v of doc.connections) {
      rows.push([String(v.conn), String(v.peer.pid), String(v.peer.uid), v.vm ?? '-', v.exe ?? '-', String(v.requests), executing(v)]);
    }
    lines.push('', ...table(rows));
  }
  return lines.join('\n') + '\n';
}
