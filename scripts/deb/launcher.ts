/**
 * /usr/bin/pr-helper of the Debian package: a small sh script, not a symlink
 * to main.js, so that rules on /usr/bin/* (libvirt's AppArmor profile
 * matches the resolved path) and pidof see pr-helper, and the Node.js that
 * runs it and its flags are fixed instead of taken from PATH and NODE_OPTIONS.
 */
import { PROGRAM } from '../../src/cli/options.js';

/** Node.js and V8 flags of every installed pr-helper process. This is the one place to add them. */
export const NODE_FLAGS: readonly string[] = [
  // comm and the command line say pr-helper from the first instant; main.ts
  // sets the same title for npm installs and checkouts.
  `--title=${PROGRAM}`,
];

function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The launcher's text: `node` and `entry` are absolute paths on the installed system. */
export function renderLauncher(node: string, entry: string): string {
  const command = [node, ...NODE_FLAGS, entry].map(shellQuote).join(' ');
  return `#!/bin/sh
# ${PROGRAM}(8): runs the daemon with the Node.js of the nodejs package and
# fixed flags, ignoring any NODE_OPTIONS of the caller. exec keeps the pid
# (sd_notify, LISTEN_PID, the pidfile libvirt writes) and every inherited
# descriptor (libvirt leaves its locked pidfile open in the helper).
NODE_OPTIONS=
export NODE_OPTIONS
exec ${command} "$@"
`;
}
