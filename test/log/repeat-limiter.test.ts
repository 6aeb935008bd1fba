import { describe, expect, it } from 'vitest';
import { OVERFLOW_KEY, RepeatLimiter } from '../../src/log/repeat-limiter.js';

function limiter(maxKeys = 100) {
  const summaries: Array<[string, number]> = [];
  const l = new RepeatLimiter<string>({ burst: 3, windowMs: 1000, maxKeys, summarise: (context, n) => summaries.push([context, n]) });
  return { l, summaries };
}

describe('RepeatLimiter', () => {
  it('admits a burst per key and window, then counts; the summary comes when the window ends', () => {
    const { l, summaries } = limiter();
    const admitted = Array.from({ length: 10 }, (_, i) => l.admit('a', `first a at ${i}`, i));
    expect(admitted).toEqual([true, true, true, false, false, false, false, false, false, false]);
    expect(l.admit('b', 'b', 5)).toBe(true);
    expect(l.nextDeadline()).toBe(1000);
    l.expire(999);
    expect(summaries).toEqual([]);
    l.expire(1000);
    // The context of the window's first occurrence; b held nothing back.
    expect(summaries).toEqual([['first a at 0', 7]]);
    expect(l.nextDeadline()).toBe(1005);
    // A new window starts with a new burst.
    expect(l.admit('a', 'again', 1001)).toBe(true);
  });

  it('keys beyond maxKeys share one overflow window', () => {
    const { l, summaries } = limiter(2);
    expect(l.admit('k1', 'k1', 0)).toBe(true);
    expect(l.admit('k2', 'k2', 0)).toBe(true);
    const others = Array.from({ length: 5 }, (_, i) => l.admit(`other${i}`, `other${i}`, 1));
    expect(others).toEqual([true, true, true, false, false]);
    l.expireAll();
    expect(summaries).toEqual([['other0', 2]]);
    expect(OVERFLOW_KEY).toBe('(many keys)');
  });

  it('expireAll reports every open window and leaves none', () => {
    const { l, summaries } = limiter();
    for (let i = 0; i < 5; i++) l.admit('x', 'x', 0);
    for (let i = 0; i < 4; i++) l.admit('y', 'y', 10);
    l.expireAll();
    expect(summaries).toEqual([['x', 2], ['y', 1]]);
    expect(l.nextDeadline()).toBeNull();
  });
});
