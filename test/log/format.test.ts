import { describe, expect, it } from 'vitest';
import { formatPretty, syslogPriority } from '../../src/log/format.js';

const record = JSON.stringify({ level: 40, time: Date.UTC(2024, 0, 2, 3, 4, 5, 678), pid: 1, name: 'pr-helper', conn: 3, peer: { pid: 9, uid: 0, gid: 0 }, vm: 'guest one', msg: 'peer not in the allow list' }) + '\n';

describe('formatPretty', () => {
  it('time, level, message, then the fields; strings with spaces quoted', () => {
    expect(formatPretty(record)).toBe('03:04:05.678 WARN  peer not in the allow list conn=3 peer={"pid":9,"uid":0,"gid":0} vm="guest one"\n');
  });

  it('without the time for destinations that stamp their own (journald)', () => {
    expect(formatPretty(record, false)).toBe('WARN  peer not in the allow list conn=3 peer={"pid":9,"uid":0,"gid":0} vm="guest one"\n');
  });
});

describe('syslogPriority', () => {
  it.each([
    [10, 7],
    [20, 7],
    [30, 6],
    [40, 4],
    [50, 3],
    [60, 2],
  ])('pino level %i is priority %i', (level, priority) => {
    expect(syslogPriority(level)).toBe(priority);
  });
});
