/**
 * The runner's side of the load generators: a few forked Node processes
 * (bench/load/loadgen.ts) that stay up for the whole run. A job's connections
 * are spread over them, so that up to `size` cores' worth of client work is
 * available and the single-threaded daemon is what saturates.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { HoldResult, Job, LoadMessage, RunJob, RunResult } from './messages.js';
import type { WorkloadName } from './workloads.js';

const LOADGEN = fileURLToPath(new URL('./loadgen.js', import.meta.url));

export interface RunSpec {
  readonly socket: string;
  readonly clients: number;
  readonly device: string;
  readonly writable?: boolean;
  readonly workload: WorkloadName;
  readonly measureFrom: number;
  readonly measureTo: number;
  /** Count mode: this many replies in total, then stop (window ignored). */
  readonly requests?: number;
  readonly samples?: boolean;
  readonly expectStatus: number;
}

export interface RunOutcome {
  /** Replies inside the window (all replies in count mode). */
  readonly completed: number;
  readonly latenciesUs: Float64Array;
  readonly unexpected: number;
  /** CPU the load processes used inside the window (µs). */
  readonly clientCpuUs: number;
  readonly processes: number;
}

export class LoadPool {
  private readonly children: ChildProcess[] = [];
  private readonly waiting = new Map<number, (message: LoadMessage) => void>();
  private nextId = 1;
  private closing = false;

  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) {
      const child = fork(LOADGEN, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      child.on('message', (m: LoadMessage) => this.waiting.get(m.id)?.(m));
      child.on('exit', (code, signal) => {
        if (this.closing) return;
        for (const resolve of this.waiting.values()) {
          resolve({ type: 'result', id: -1, completed: 0, total: 0, latenciesUs: null, unexpected: 0, firstUnexpected: null, cpuUs: 0, error: `load generator exited (${code ?? signal})` });
        }
      });
      this.children.push(child);
    }
  }

  /** Splits `clients` (and `requests`) as evenly as possible over min(size, clients) processes. */
  async run(spec: RunSpec): Promise<RunOutcome> {
    const procs = Math.min(this.size, spec.clients);
    const jobs: Promise<RunResult>[] = [];
    let first = 0;
    for (let p = 0; p < procs; p++) {
      const clients = Math.floor(spec.clients / procs) + (p < spec.clients % procs ? 1 : 0);
      const requests = spec.requests === undefined ? undefined : Math.max(1, Math.round((spec.requests * clients) / spec.clients));
      const job: RunJob = {
        type: 'run',
        id: this.nextId++,
        socket: spec.socket,
        clients,
        firstClient: first,
        device: spec.device,
        writable: spec.writable ?? false,
        workload: spec.workload,
        measureFrom: spec.measureFrom,
        measureTo: spec.measureTo,
        ...(requests === undefined ? {} : { requests }),
        samples: spec.samples ?? true,
        expectStatus: spec.expectStatus,
      };
      first += clients;
      jobs.push(this.send(p, job).then((m) => m as RunResult));
    }
    const results = await Promise.all(jobs);
    const failure = results.find((r) => r.error !== null);
    if (failure) throw new Error(`load generator: ${failure.error}`);
    const bad = results.find((r) => r.unexpected > 0);
    if (bad) throw new Error(`load generator: ${bad.unexpected} unexpected replies, first: ${bad.firstUnexpected}`);
    const samples = results.map((r) => r.latenciesUs ?? new Float64Array());
    const latenciesUs = new Float64Array(samples.reduce((n, s) => n + s.length, 0));
    let at = 0;
    for (const s of samples) {
      latenciesUs.set(s, at);
      at += s.length;
    }
    return {
      completed: results.reduce((n, r) => n + r.completed, 0),
      latenciesUs,
      unexpected: 0,
      clientCpuUs: results.reduce((n, r) => n + r.cpuUs, 0),
      processes: procs,
    };
  }

  /**
   * Opens `clients` connections on process `process`, each sending one request
   * to `device` and waiting. `sent` resolves once all requests are written,
   * `done` with the reply times.
   */
  hold(process: number, socket: string, clients: number, device: string): { sent: Promise<void>; done: Promise<HoldResult> } {
    const id = this.nextId++;
    let markSent!: () => void;
    const sent = new Promise<void>((r) => (markSent = r));
    const done = new Promise<HoldResult>((resolve) => {
      this.waiting.set(id, (m) => {
        if (m.type === 'sent') return markSent();
        markSent();
        this.waiting.delete(id);
        resolve(m.type === 'held' ? m : { type: 'held', id, replyTimes: [], error: m.type === 'result' ? m.error : 'unexpected message' });
      });
    });
    this.children[process % this.size]!.send({ type: 'hold', id, socket, clients, device } satisfies Job);
    return { sent, done };
  }

  close(): void {
    this.closing = true;
    for (const child of this.children) child.disconnect();
  }

  private send(process: number, job: Job): Promise<LoadMessage> {
    return new Promise((resolve) => {
      this.waiting.set(job.id, (m) => {
        this.waiting.delete(job.id);
        resolve(m);
      });
      this.children[process]!.send(job);
    });
  }
}
