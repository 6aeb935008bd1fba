/** What /proc says about a daemon: memory, descriptors, CPU time. */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let clockTicks: number | undefined;

/** USER_HZ, the unit of utime/stime in /proc/PID/stat. */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

function statusField(pid: number, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(match[1]);
}

/** Resident set size (VmRSS) in MB. */
export function rssMb(pid: number): number {
  return statusField(pid, 'VmRSS') / 1024;
}

/** Private_Dirty of /proc/PID/smaps_rollup in MB: what this process alone costs in memory. */
export function privateDirtyMb(pid: number): number {
  const match = /^Private_Dirty:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  if (!match) throw new Error(`/proc/${pid}/smaps_rollup has no Private_Dirty`);
  return Number(match[1]) / 1024;
}

export function threadCount(pid: number): number {
  return statusField(pid, 'Threads');
}

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** User + system CPU time of the whole process (all threads, also exited ones), in µs. */
export function cpuTimeUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may contain spaces and parentheses: fields start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5), i.e. 12 and 13 after the name.
  return ((Number(fields[11]) + Number(fields[12])) / ticksPerSecond()) * 1e6;
}
