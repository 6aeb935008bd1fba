import * as native from '../native/binding.js';

/**
 * sd_notify(3): a no-op outside systemd. Failures are reported to the caller
 * rather than thrown, since a lost status message must not stop the daemon.
 */
export function notifySystemd(message: string, env: NodeJS.ProcessEnv = process.env): Error | null {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return null;
  try {
    native.sdNotify(socket, message);
    return null;
  } catch (err) {
    return err as Error;
  }
}
