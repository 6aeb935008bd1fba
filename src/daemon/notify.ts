import * as native from '../native/binding.js';

export type Notifier = (message: string) => Error | null;

/**
 * sd_notify(3), but only towards our own service manager: when systemd
 * started this very process as a service (SYSTEMD_EXEC_PID, systemd >= 248)
 * or socket-activated it (LISTEN_PID). libvirt's daemons run under systemd
 * with NOTIFY_SOCKET set and leak it to the helpers they start; a helper that
 * answered there would claim to be their main process (qemu-pr-helper sends
 * nothing). NOTIFY_SOCKET is removed from the environment either way.
 * Call before anything consumes LISTEN_PID.
 */
export function systemdNotifier(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): Notifier {
  const socket = env.NOTIFY_SOCKET;
  delete env.NOTIFY_SOCKET;
  const ours = env.SYSTEMD_EXEC_PID === String(pid) || env.LISTEN_PID === String(pid);
  if (!socket || !ours) return () => null;
  return (message) => {
    try {
      native.sdNotify(socket, message);
      return null;
    } catch (err) {
      return err as Error;
    }
  };
}
