/**
 * A load-generator process (forked by bench/load/pool.ts). It runs the jobs it
 * is sent, each over its own connections, and answers with counts, latency
 * samples and its own CPU use, so the report can show whether the clients or
 * the daemon were the limit.
 */
import { closeSync, openSync } from 'node:fs';
import { nowMs } from '../clock.js';
import { SampleBuffer } from '../stats.js';
import { LoadConnection, type ConnectionEvents, type ReplyInfo } from './load-connection.js';
import type { HoldJob, Job, LoadMessage, RunJob } from './messages.js';
import { createWorkload, type Workload } from './workloads.js';

function post(message: LoadMessage): void {
  process.send!(message);
}

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

class Run implements ConnectionEvents {
  private readonly connections: LoadConnection[] = [];
  private readonly deviceFds: number[] = [];
  private readonly workloads = new Map<LoadConnection, Workload>();
  private readonly samples: SampleBuffer | null;
  private completed = 0;
  private total = 0;
  private unexpected = 0;
  private firstUnexpected: string | null = null;
  private error: string | null = null;
  private stopping = false;
  private finished = false;
  private cpuAtStart: number | null = null;
  private cpuAtEnd: number | null = null;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(private readonly job: RunJob) {
    this.samples = job.samples ? new SampleBuffer() : null;
  }

  start(): void {
    const job = this.job;
    const now = nowMs();
    if (job.requests === undefined) {
      this.timers.push(setTimeout(() => (this.cpuAtStart = cpuUs()), job.measureFrom - now));
      this.timers.push(setTimeout(() => this.stop(), job.measureTo - now));
    } else {
      this.cpuAtStart = cpuUs();
    }
    try {
      for (let i = 0; i < job.clients; i++) {
        const deviceFd = openSync(job.device, job.writable ? 'r+' : 'r');
        this.deviceFds.push(deviceFd);
        const conn = new LoadConnection(job.socket, deviceFd, this);
        this.connections.push(conn);
        this.workloads.set(conn, createWorkload(job.workload, job.firstClient + i));
      }
    } catch (err) {
      this.fail(err as Error);
    }
  }

  ready(conn: LoadConnection): void {
    if (!this.stopping) this.sendNext(conn, nowMs());
    else this.maybeFinish();
  }

  reply(conn: LoadConnection, reply: ReplyInfo): void {
    const now = nowMs();
    const job = this.job;
    this.total++;
    if (reply.status !== job.expectStatus) {
      this.unexpected++;
      this.firstUnexpected ??= `status 0x${reply.status.toString(16)} (expected 0x${job.expectStatus.toString(16)})`;
    }
    if (job.requests !== undefined) {
      this.completed++;
      this.samples?.push((now - reply.sentAt) * 1000);
      if (this.total >= job.requests) this.stop();
    } else if (now >= job.measureFrom && now <= job.measureTo) {
      this.completed++;
      this.samples?.push((now - reply.sentAt) * 1000);
    }
    if (!this.stopping) this.sendNext(conn, now);
    else this.maybeFinish();
  }

  failed(_conn: LoadConnection, error: Error): void {
    this.fail(error);
  }

  private sendNext(conn: LoadConnection, now: number): void {
    try {
      conn.send(this.workloads.get(conn)!.next(), now);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private fail(error: Error): void {
    this.error ??= error.message;
    this.stop();
  }

  private stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.cpuAtEnd = cpuUs();
    this.cpuAtStart ??= this.cpuAtEnd;
    this.maybeFinish();
  }

  /** Once no request is outstanding: close everything and report. */
  private maybeFinish(): void {
    if (this.finished || this.connections.some((c) => c.busy && !this.error)) return;
    this.finished = true;
    this.timers.forEach(clearTimeout);
    this.connections.forEach((c) => c.close());
    this.deviceFds.forEach((fd) => closeSync(fd));
    post({
      type: 'result',
      id: this.job.id,
      completed: this.completed,
      total: this.total,
      latenciesUs: this.samples?.toArray() ?? null,
      unexpected: this.unexpected,
      firstUnexpected: this.firstUnexpected,
      cpuUs: (this.cpuAtEnd ?? 0) - (this.cpuAtStart ?? 0),
      error: this.error,
    });
  }
}

/** The isolation case's blocked clients: one request each, reply times reported at the end. */
class Hold implements ConnectionEvents {
  private readonly connections: LoadConnection[] = [];
  private readonly deviceFds: number[] = [];
  private readonly replyTimes: number[] = [];
  private ready_ = 0;
  private error: string | null = null;
  private finished = false;

  constructor(private readonly job: HoldJob) {}

  start(): void {
    try {
      for (let i = 0; i < this.job.clients; i++) {
        const fd = openSync(this.job.device, 'r');
        this.deviceFds.push(fd);
        this.connections.push(new LoadConnection(this.job.socket, fd, this));
      }
    } catch (err) {
      this.failed(null, err as Error);
    }
  }

  ready(conn: LoadConnection): void {
    try {
      conn.send(createWorkload('read-keys', 0).next(), nowMs());
    } catch (err) {
      this.failed(conn, err as Error);
      return;
    }
    if (++this.ready_ === this.job.clients) post({ type: 'sent', id: this.job.id });
  }

  reply(): void {
    this.replyTimes.push(nowMs());
    if (this.replyTimes.length === this.job.clients) this.finish();
  }

  failed(_conn: LoadConnection | null, error: Error): void {
    this.error ??= error.message;
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.connections.forEach((c) => c.close());
    this.deviceFds.forEach((fd) => closeSync(fd));
    if (this.ready_ < this.job.clients) post({ type: 'sent', id: this.job.id });
    post({ type: 'held', id: this.job.id, replyTimes: this.replyTimes, error: this.error });
  }
}

process.on('message', (job: Job) => {
  if (job.type === 'run') new Run(job).start();
  else new Hold(job).start();
});
process.on('disconnect', () => process.exit(0));
