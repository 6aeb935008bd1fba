/**
 * systemd socket activation as qemu-pr-helper implements it (main() in
 * scsi/qemu-pr-helper.c, via util/systemd.c check_socket_activation): LISTEN_PID must equal our pid and LISTEN_FDS
 * must parse, otherwise activation is ignored.
 */
export const FIRST_ACTIVATED_FD = 3;

export type Activation =
  | { kind: 'none' }
  | { kind: 'activated'; fd: number }
  | { kind: 'error'; message: string };

function parseCount(value: string | undefined): number | null {
  if (value === undefined || !/^\d+$/.test(value)) return null;
  return Number(value);
}

export function checkSocketActivation(
  env: NodeJS.ProcessEnv,
  pid: number,
  socketGiven: boolean,
  program: string,
): Activation {
  const listenPid = parseCount(env.LISTEN_PID);
  const listenFds = parseCount(env.LISTEN_FDS);
  if (listenPid === null || listenPid !== pid || listenFds === null || listenFds === 0) return { kind: 'none' };
  // Children must not inherit the activation.
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (socketGiven) return { kind: 'error', message: "Unix socket can't be set when using socket activation" };
  if (listenFds > 1) return { kind: 'error', message: `${program} does not support socket activation with LISTEN_FDS > 1` };
  return { kind: 'activated', fd: FIRST_ACTIVATED_FD };
}
