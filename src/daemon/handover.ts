/**
 * State a daemon process hands to its own re-executed image (privilege drop)
 * or to its detached child (-d): descriptors stay open across execve, their
 * numbers travel in one environment variable that is removed on arrival.
 */
const VARIABLE = 'PR_HELPER_HANDOVER';

export interface Handover {
  /** Listening socket; null when the receiver must still create it. */
  readonly listenFd: number | null;
  /** Socket path to unlink on exit; null for an activated socket. */
  readonly ownPath: string | null;
  readonly pidfile: { readonly path: string; readonly fd: number } | null;
  /** Pipe on which a -d child reports readiness to its waiting parent. */
  readonly readyFd: number | null;
  /** Set once privileges were dropped: what the re-executed image must find. */
  readonly dropped: { readonly uid: number; readonly gid: number; readonly capabilities: string } | null;
}

export function encodeHandover(handover: Handover): Record<string, string> {
  return { [VARIABLE]: JSON.stringify(handover) };
}

/** Takes the handover out of the environment; null when this process was started normally. */
export function takeHandover(env: NodeJS.ProcessEnv = process.env): Handover | null {
  const text = env[VARIABLE];
  if (text === undefined) return null;
  delete env[VARIABLE];
  const value = JSON.parse(text) as Handover;
  const fd = (v: unknown) => v === null || (Number.isInteger(v) && (v as number) >= 0);
  if (!fd(value.listenFd) || !fd(value.readyFd) || (value.pidfile !== null && !fd(value.pidfile.fd))) {
    throw new Error(`malformed ${VARIABLE}`);
  }
  return value;
}
