import type { Logger } from 'pino';
import { RepeatLimiter } from './repeat-limiter.js';

/** Which peer a line is about: the process behind a connection. */
export interface PeerKey {
  readonly pid: number;
  readonly uid: number;
}

/** Identical lines per peer let through per window, and the window. */
export const REPEAT_BURST = 10;
export const REPEAT_WINDOW_MS = 60_000;
const MAX_TRACKED = 4096;

type Level = 'info' | 'warn';

interface FirstLine {
  readonly level: Level;
  readonly peer: PeerKey;
  /** Filled in once the line is admitted (a held-back line is never built). */
  fields: Record<string, unknown> | null;
  msg: string;
}

export type LineFields = Record<string, unknown> | (() => Record<string, unknown>);

/**
 * Lines a peer can cause over and over (refused by the allow list, over the
 * connection limit, the same protocol violation, the same SG_IO failure):
 * the first REPEAT_BURST per peer and message in a minute are logged, the
 * rest counted and summarised in one line with `suppressed=N` when the minute
 * is over (or the daemon stops). Without this one misbehaving client filled
 * the disk at megabytes per second.
 */
export class RepeatedLines {
  private readonly limiter: RepeatLimiter<FirstLine>;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly log: Logger) {
    this.limiter = new RepeatLimiter<FirstLine>({
      burst: REPEAT_BURST,
      windowMs: REPEAT_WINDOW_MS,
      maxKeys: MAX_TRACKED,
      summarise: (first, suppressed) =>
        this.log[first.level](
          { peer: first.peer, ...first.fields, suppressed },
          `${first.msg} (repeated: ${suppressed} more in ${REPEAT_WINDOW_MS / 1000} s not logged)`,
        ),
    });
  }

  /**
   * Logs `msg` on `target` unless this peer has said the same too often
   * lately. `fields` may be a function, called only for a line that is written.
   */
  write(target: Logger, level: Level, peer: PeerKey, fields: LineFields, msg: string): void {
    this.writeLazy(target, level, peer, msg, () => ({ fields: typeof fields === 'function' ? fields() : fields, msg }));
  }

  /**
   * The same for a line that is costly to build: `key` says which lines are
   * the same, and `build` runs only for a line that is written.
   */
  writeLazy(target: Logger, level: Level, peer: PeerKey, key: string, build: () => { fields: Record<string, unknown>; msg: string }): void {
    const first: FirstLine = { level, peer: { pid: peer.pid, uid: peer.uid }, fields: null, msg: '' };
    if (!this.limiter.admit(`${peer.uid}/${peer.pid}/${key}`, first, Date.now())) {
      this.schedule();
      return;
    }
    // Stored as the window's context when this line opened the window.
    const line = build();
    first.fields = line.fields;
    first.msg = line.msg;
    target[level](line.fields, line.msg);
  }

  /** Summarises every open window now (at stop). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.limiter.expireAll();
  }

  private schedule(): void {
    if (this.timer) return;
    const deadline = this.limiter.nextDeadline();
    if (deadline === null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.limiter.expire(Date.now());
      this.schedule();
    }, Math.max(0, deadline - Date.now()));
    this.timer.unref();
  }
}
