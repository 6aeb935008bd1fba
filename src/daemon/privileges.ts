import { readdirSync, readFileSync } from 'node:fs';
import * as native from '../native/binding.js';

export const CAP_SETGID = 6;
export const CAP_SETPCAP = 8;
export const CAP_SYS_RAWIO = 17;

const bit = (cap: number) => 1n << BigInt(cap);
const ALL_CAPABILITIES = (1n << 64n) - 1n;

/** What the serving daemon must run as: ids, and the capabilities its main thread keeps. */
export interface PrivilegeTarget {
  readonly uid: number;
  readonly gid: number;
  readonly keep: bigint;
}

/** One thread's credentials as /proc/PID/task/TID/status reports them. */
export interface ThreadCredentials {
  readonly tid: number;
  /** Real, effective, saved, filesystem. */
  readonly uids: readonly number[];
  readonly gids: readonly number[];
  readonly groups: readonly number[];
  readonly inheritable: bigint;
  readonly permitted: bigint;
  readonly effective: bigint;
  readonly bounding: bigint;
  readonly ambient: bigint;
  readonly noNewPrivs: boolean;
}

export function parseThreadStatus(tid: number, status: string): ThreadCredentials {
  const field = (name: string) => {
    const match = new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status);
    if (!match) throw new Error(`thread ${tid}: no ${name} in its status`);
    return match[1]!.trim();
  };
  const numbers = (name: string) => (field(name) === '' ? [] : field(name).split(/\s+/).map(Number));
  const mask = (name: string) => BigInt(`0x${field(name)}`);
  return {
    tid,
    uids: numbers('Uid'),
    gids: numbers('Gid'),
    groups: numbers('Groups'),
    inheritable: mask('CapInh'),
    permitted: mask('CapPrm'),
    effective: mask('CapEff'),
    bounding: mask('CapBnd'),
    ambient: mask('CapAmb'),
    noNewPrivs: field('NoNewPrivs') === '1',
  };
}

/** Every thread of a process (default: this one). A thread that exits while being read is skipped. */
export function readThreadCredentials(taskDir = '/proc/self/task'): ThreadCredentials[] {
  const threads: ThreadCredentials[] = [];
  for (const name of readdirSync(taskDir)) {
    let status: string;
    try {
      status = readFileSync(`${taskDir}/${name}/status`, 'utf8');
    } catch {
      continue;
    }
    threads.push(parseThreadStatus(Number(name), status));
  }
  return threads;
}

/** The change every thread makes; `keep` applies to the calling thread only. */
export type DropPlan = native.ThreadCredentialPlan;

/**
 * What to change, from the calling thread's credentials. Nothing that is
 * already right is touched: under a unit that already gives exactly the
 * target (CapabilityBoundingSet=CAP_SYS_RAWIO, no CAP_SETPCAP/SETUID/SETGID)
 * the plan only narrows capability sets, which needs no privilege.
 */
export function planDrop(target: PrivilegeTarget, self: ThreadCredentials): DropPlan {
  const idsDiffer = self.uids.some((id) => id !== target.uid) || self.gids.some((id) => id !== target.gid);
  // Like libcap-ng's CAPNG_DROP_SUPP_GRP in the original, where we may.
  const groupsToDrop = self.groups.length > 0 && (self.effective & bit(CAP_SETGID)) !== 0n;
  return {
    changeIds: idsDiffer || groupsToDrop,
    uid: target.uid,
    gid: target.gid,
    keep: target.keep,
    dropBounding: (self.effective & bit(CAP_SETPCAP)) !== 0n ? self.bounding & ~target.keep & ALL_CAPABILITIES : 0n,
    noNewPrivs: true,
  };
}

const hex = (mask: bigint) => `0x${mask.toString(16)}`;

/**
 * Every way the threads differ from the plan: an empty list means the daemon
 * may serve. `selfTid` is the thread that keeps `plan.keep` and starts the
 * SG_IO workers; every other thread must hold no capability at all.
 */
export function credentialProblems(plan: DropPlan, threads: readonly ThreadCredentials[], selfTid: number): string[] {
  const problems: string[] = [];
  for (const t of threads) {
    const allowed = t.tid === selfTid ? plan.keep : 0n;
    const where = `thread ${t.tid}`;
    if (t.uids.some((id) => id !== plan.uid)) problems.push(`${where} has uids ${t.uids.join('/')}, planned ${plan.uid}`);
    if (t.gids.some((id) => id !== plan.gid)) problems.push(`${where} has gids ${t.gids.join('/')}, planned ${plan.gid}`);
    if (plan.changeIds && t.groups.length > 0) problems.push(`${where} keeps supplementary groups ${t.groups.join(',')}`);
    const sets: Array<[string, bigint, bigint]> = [
      ['effective', t.effective, allowed],
      ['permitted', t.permitted, allowed],
      ['inheritable', t.inheritable, 0n],
      ['ambient', t.ambient, 0n],
    ];
    if (plan.dropBounding !== 0n) sets.push(['bounding', t.bounding, plan.keep]);
    for (const [name, held, limit] of sets) {
      if ((held & ~limit) !== 0n) problems.push(`${where} holds ${name} capabilities ${hex(held)}, planned at most ${hex(limit)}`);
    }
    if (t.tid === selfTid && (t.effective & plan.keep) !== plan.keep) {
      problems.push(`${where} lacks capabilities ${hex(plan.keep & ~t.effective)} it must keep`);
    }
    if (plan.noNewPrivs && !t.noNewPrivs) problems.push(`${where} lacks no_new_privs`);
  }
  return problems;
}

/**
 * Drops to `target` in this process, on every thread, without re-executing:
 * descriptors the starter left open (libvirt's locked pidfile) stay open and
 * the pid stays the same. Afterwards every thread is read back from /proc and
 * any excess is an error: the caller refuses to serve.
 */
export function dropPrivileges(target: PrivilegeTarget): { threads: number } {
  // JavaScript runs on the main thread, whose tid is the pid.
  const selfTid = process.pid;
  const self = readThreadCredentials().find((t) => t.tid === selfTid);
  if (!self) throw new Error(`Failed to drop privileges: thread ${selfTid} not found in /proc/self/task`);
  const plan = planDrop(target, self);
  let threads: number;
  try {
    threads = native.applyToAllThreads(plan);
  } catch (err) {
    throw new Error(`Failed to drop privileges: ${(err as Error).message}`);
  }
  const problems = credentialProblems(plan, readThreadCredentials(), selfTid);
  if (problems.length > 0) throw new Error(`Failed to drop privileges: ${problems.join('; ')}`);
  return { threads };
}
