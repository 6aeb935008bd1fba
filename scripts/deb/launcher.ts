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
  // libvirt runs one helper per VM, so each one's footprint counts. V8's
  // platform pool defaults to 4 workers for background compilation and GC;
  // one keeps the daemon at 8 threads idle (11 otherwise).
  '--v8-pool-size=1',
  // The young generation grows to 2 x 16 MB under sustained requests and
  // stays dirty afterwards; 1 MB semi-spaces keep private memory after
  // 100k requests at ~16 MB instead of ~38 MB, at no CPU cost measurable here
  // (bench/README.md, "Footprint").
  '--max-semi-space-size=1',
];

/**
 * Environment of every installed pr-helper process. An explicit trim threshold
 * turns off glibc's dynamic one, which after a burst of requests grows to
 * megabytes and keeps freed heap dirty in every idle helper: measured here,
 * private memory after 100k requests 12.1 MB with it, 16.0 MB without
 * (mallopt(3), M_TRIM_THRESHOLD; bench/README.md, "Footprint").
 */
export const LAUNCH_ENVIRONMENT: Readonly<Record<string, string>> = {
  MALLOC_TRIM_THRESHOLD_: '131072',
};

function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The launcher's text: `node` and `entry` are absolute paths on the installed system. */
export function renderLauncher(node: string, entry: string): string {
  const command = [node, ...NODE_FLAGS, entry].map(shellQuote).join(' ');
  const assignments = Object.entries(LAUNCH_ENVIRONMENT)
    .map(([name, value]) => `${name}=${shellQuote(value)}`)
    .join('\n');
  return `#!/bin/sh
# ${PROGRAM}(8): runs the daemon with the Node.js of the nodejs package and
# fixed flags, ignoring any NODE_OPTIONS of the caller. exec keeps the pid
# (sd_notify, LISTEN_PID, the pidfile libvirt writes) and every inherited
# descriptor (libvirt leaves its locked pidfile open in the helper).
NODE_OPTIONS=
${assignments}
export NODE_OPTIONS ${Object.keys(LAUNCH_ENVIRONMENT).join(' ')}
exec ${command} "$@"
`;
}
