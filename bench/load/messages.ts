/** Messages between the benchmark runner and its load-generator processes. */
import type { WorkloadName } from './workloads.js';

export interface RunJob {
  readonly type: 'run';
  readonly id: number;
  readonly socket: string;
  /** Connections this process opens; each does sequential requests with its own descriptor. */
  readonly clients: number;
  /** Index of this process's first connection across the whole job (keeps PR keys distinct). */
  readonly firstClient: number;
  /** File whose descriptor rides on every CDB. */
  readonly device: string;
  readonly writable: boolean;
  readonly workload: WorkloadName;
  /** Window in nowMs() time: replies inside it count; no request is sent after measureTo. */
  readonly measureFrom: number;
  readonly measureTo: number;
  /** Count mode: stop after this many replies in this process (the window is then unbounded). */
  readonly requests?: number;
  /** Record each reply's round trip (µs). */
  readonly samples: boolean;
  /** Every reply must carry this SCSI status; others are counted as unexpected. */
  readonly expectStatus: number;
}

/** Connections that each send one request and wait for its reply (the blocked clients of the isolation case). */
export interface HoldJob {
  readonly type: 'hold';
  readonly id: number;
  readonly socket: string;
  readonly clients: number;
  readonly device: string;
}

export type Job = RunJob | HoldJob;

export interface RunResult {
  readonly type: 'result';
  readonly id: number;
  /** Replies inside the window. */
  readonly completed: number;
  readonly total: number;
  readonly latenciesUs: Float64Array | null;
  readonly unexpected: number;
  readonly firstUnexpected: string | null;
  /** CPU this load process used inside the window (user + system, µs). */
  readonly cpuUs: number;
  readonly error: string | null;
}

export interface HoldSent {
  readonly type: 'sent';
  readonly id: number;
}

export interface HoldResult {
  readonly type: 'held';
  readonly id: number;
  /** nowMs() at which each reply arrived. */
  readonly replyTimes: number[];
  readonly error: string | null;
}

export type LoadMessage = RunResult | HoldSent | HoldResult;
