// Two VMs on one shared (simulated) disk, as in a cluster fencing: the audit
// trail at the default level names both VMs, the disk and every change of
// reservation state, and the README's one-liner answers "who preempted whom".
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { startDaemon } from '../helpers/daemon.js';
import { REPO_ROOT } from '../helpers/repo-root.js';
import type { PeerCommand } from '../helpers/qemu-like-peer.js';

const PEER = join(REPO_ROOT, 'dist/test/helpers/qemu-like-peer.js');
const dir = mkdtempSync(join(tmpdir(), 'pr-audit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** One VM-like process: -name guest=NAME on its command line, one connection, one descriptor. */
class Vm {
  private readonly proc: ChildProcess;
  private readonly answers: string[] = [];
  private waiting: ((line: string) => void) | null = null;

  constructor(name: string, socket: string, disk: string) {
    this.proc = spawn(process.execPath, [PEER, socket, disk, '-name', `guest=${name},debug-threads=on`], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      if (this.waiting) {
        this.waiting(line);
        this.waiting = null;
      } else {
        this.answers.push(line);
      }
    });
  }

  async run(command: PeerCommand): Promise<{ status: number; senseKey: number | null }> {
    const answer = new Promise<string>((resolve) => (this.waiting = resolve));
    this.proc.stdin!.write(JSON.stringify(command) + '\n');
    return JSON.parse(await answer) as { status: number; senseKey: number | null };
  }

  async stop(): Promise<void> {
    const exited = new Promise((r) => this.proc.on('exit', r));
    this.proc.stdin!.end();
    await exited;
  }
}

describe('audit trail', () => {
  it('two VMs, one disk: every state change with VM, disk, action, type and keys; conflicts and unit attentions at info', async () => {
    const disk = join(dir, 'shared.img');
    writeFileSync(disk, Buffer.alloc(4096));
    const log = join(dir, 'pr.log');
    const daemon = await startDaemon(join(dir, 'audit.sock'), ['--simulate', '--log-file', log]);
    const a = new Vm('vmA', daemon.socket, disk);
    const b = new Vm('vmB', daemon.socket, disk);
    const WE = 1;
    const RESERVATION_CONFLICT = 0x18;
    const UNIT_ATTENTION = 6;
    try {
      expect(await a.run({ out: 'REGISTER', saKey: '0xa' })).toEqual({ status: 0, senseKey: null });
      expect(await b.run({ out: 'REGISTER', saKey: '0xb' })).toEqual({ status: 0, senseKey: null });
      expect(await a.run({ out: 'RESERVE', type: WE, key: '0xa' })).toEqual({ status: 0, senseKey: null });
      expect(await b.run({ out: 'RESERVE', type: WE, key: '0xb' })).toEqual({ status: RESERVATION_CONFLICT, senseKey: null });
      // vmB fences vmA.
      expect(await b.run({ out: 'PREEMPT', type: WE, key: '0xb', saKey: '0xa' })).toEqual({ status: 0, senseKey: null });
      expect(await a.run({ in: 'READ_KEYS' })).toMatchObject({ status: 2, senseKey: UNIT_ATTENTION });
      expect(await a.run({ in: 'READ_KEYS' })).toMatchObject({ status: 0 });
    } finally {
      await a.stop();
      await b.stop();
      expect(await daemon.stop()).toBe(0);
    }

    const lines = readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const audit = lines
      .filter((l) => l['op'] !== undefined)
      .map(({ level, vm, file, msg, type, key, saKey, sense, exe }) => ({ level, vm, exe, file, msg, type, key, saKey, sense }));
    const k = (n: number) => `0x${n.toString(16)}`;
    const common = { exe: 'node', file: disk, level: 30 };
    expect(audit).toEqual([
      { ...common, vm: 'vmA', msg: 'PR OUT REGISTER: GOOD', type: undefined, key: k(0), saKey: k(0xa), sense: undefined },
      { ...common, vm: 'vmB', msg: 'PR OUT REGISTER: GOOD', type: undefined, key: k(0), saKey: k(0xb), sense: undefined },
      { ...common, vm: 'vmA', msg: 'PR OUT RESERVE: GOOD', type: 'WE', key: k(0xa), saKey: k(0), sense: undefined },
      { ...common, vm: 'vmB', msg: 'PR OUT RESERVE: RESERVATION CONFLICT', type: 'WE', key: k(0xb), saKey: k(0), sense: undefined },
      { ...common, vm: 'vmB', msg: 'PR OUT PREEMPT: GOOD', type: 'WE', key: k(0xb), saKey: k(0xa), sense: undefined },
      { ...common, vm: 'vmA', msg: 'PR IN READ KEYS: UNIT ATTENTION', type: undefined, key: undefined, saKey: undefined, sense: 'UNIT ATTENTION 2a/05 (registrations preempted)' },
    ]);
    // Every line of a connection says who is behind it.
    const opened = lines.filter((l) => l['msg'] === 'connection opened' && l['vm'] !== undefined);
    expect(opened.map((l) => l['vm']).sort()).toEqual(['vmA', 'vmB']);

    // The README's one-liner: registrations (which VM holds which key) and preemptions.
    const answer = execFileSync('grep', ['-E', '"msg":"PR OUT (REGISTER|PREEMPT)', log], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(answer.map((l) => [l['vm'], l['action'], l['saKey']])).toEqual([
      ['vmA', 'REGISTER', k(0xa)],
      ['vmB', 'REGISTER', k(0xb)],
      ['vmB', 'PREEMPT', k(0xa)],
    ]);
  });
});
