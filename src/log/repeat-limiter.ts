/**
 * Lets through the first `burst` occurrences of one key per window and counts
 * the rest; when the window ends, `summarise` is told how many were held
 * back. Pure bookkeeping: time comes from `now`, the timer that ends windows
 * is the caller's (see `nextDeadline`). Memory is bounded by `maxKeys`: keys
 * beyond it share one overflow key, so a peer that varies its identity still
 * cannot get more than one more burst per window.
 */
export interface RepeatLimiterOptions<C> {
  readonly burst: number;
  readonly windowMs: number;
  readonly maxKeys: number;
  /** Called once per window that held occurrences back, with the context of its first occurrence. */
  readonly summarise: (context: C, suppressed: number) => void;
}

interface Window<C> {
  readonly endsAt: number;
  readonly context: C;
  seen: number;
}

export const OVERFLOW_KEY = '(many keys)';

export class RepeatLimiter<C> {
  /** Insertion order is window order: every window has the same length. */
  private readonly windows = new Map<string, Window<C>>();

  constructor(private readonly options: RepeatLimiterOptions<C>) {}

  /** Whether this occurrence should be logged; `context` is kept for the summary of a new window. */
  admit(key: string, context: C, now: number): boolean {
    this.expire(now);
    let window = this.windows.get(key);
    if (!window) {
      if (this.windows.size >= this.options.maxKeys && key !== OVERFLOW_KEY) return this.admit(OVERFLOW_KEY, context, now);
      window = { endsAt: now + this.options.windowMs, context, seen: 0 };
      this.windows.set(key, window);
    }
    window.seen++;
    return window.seen <= this.options.burst;
  }

  /** When the earliest open window ends (to schedule expire()), or null when none is open. */
  nextDeadline(): number | null {
    for (const window of this.windows.values()) return window.endsAt;
    return null;
  }

  /** Closes the windows that ended by `now`, summarising those that held something back. */
  expire(now: number): void {
    for (const [key, window] of this.windows) {
      if (window.endsAt > now) return;
      this.close(key, window);
    }
  }

  /** Closes every window (the daemon stops): nothing counted goes unreported. */
  expireAll(): void {
    for (const [key, window] of this.windows) this.close(key, window);
  }

  private close(key: string, window: Window<C>): void {
    this.windows.delete(key);
    const suppressed = window.seen - this.options.burst;
    if (suppressed > 0) this.options.summarise(window.context, suppressed);
  }
}
