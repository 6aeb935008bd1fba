import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_QUEUED_BYTES, LogSink } from '../../src/log/sink.js';
import * as native from '../../src/native/binding.js';
import { createFifo, readAvailable } from '../helpers/fifo.js';

const dir = mkdtempSync(join(tmpdir(), 'pr-sink-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));
const line = (i: number): string => `line ${String(i).padStart(6, '0')} ${'x'.repeat(1000)}\n`;

describe('LogSink', () => {
  it('never blocks: a stalled reader costs the lines beyond pipe + queue, counted, and reported once drained', async () => {
    const { readFd, writeFd } = createFifo(dir, 'f1');
    const reports: number[] = [];
    const sink = new LogSink(writeFd, true, (n) => reports.push(n));
    const total = 1000;
    // 1 MB into a 64 KiB pipe nobody reads (a blocking write would hang here).
    for (let i = 0; i < total; i++) sink.write(line(i));
    // The turn's lines leave together once it ends.
    await nextTurn();
    expect(native.getStatusFlags(writeFd) & native.O_NONBLOCK).toBe(native.O_NONBLOCK);
    const kept = total - sink.dropped;
    expect(kept * line(0).length).toBeLessThanOrEqual(MAX_QUEUED_BYTES + 65536 + line(0).length);
    expect(sink.dropped).toBeGreaterThan(0);
    expect(reports).toEqual([]);

    let got = '';
    for (let i = 0; i < 200 && reports.length === 0; i++) {
      got += readAvailable(readFd);
      await new Promise((r) => setTimeout(r, 5));
    }
    got += readAvailable(readFd);
    expect(reports).toEqual([sink.dropped]);
    // Whole lines only, in order, and exactly those not dropped.
    const lines = got.split('\n').filter(Boolean);
    expect(lines).toHaveLength(kept);
    expect(lines.every((l) => /^line \d{6} x{1000}$/.test(l))).toBe(true);
    const numbers = lines.map((l) => Number(l.slice(5, 11)));
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
    sink.restore();
    closeSync(readFd);
  });

  it('a reader that is gone (EPIPE) swallows every line without an error', async () => {
    const { readFd, writeFd } = createFifo(dir, 'f2');
    closeSync(readFd);
    const sink = new LogSink(writeFd, true);
    for (let i = 0; i < 100; i++) sink.write(line(i));
    await nextTurn();
    expect(sink.dropped).toBe(100);
    sink.write(line(100));
    expect(sink.dropped).toBe(101);
    sink.restore();
  });

  it('restore() puts back the flags it found on a descriptor it does not own', async () => {
    const { readFd, writeFd } = createFifo(dir, 'f3');
    const before = native.getStatusFlags(writeFd);
    const sink = new LogSink(writeFd, false);
    sink.write('one\n');
    await nextTurn();
    expect(native.getStatusFlags(writeFd)).toBe(before | native.O_NONBLOCK);
    sink.restore();
    expect(native.getStatusFlags(writeFd)).toBe(before);
    expect(readAvailable(readFd)).toBe('one\n');
    closeSync(readFd);
    closeSync(writeFd);
  });
});
