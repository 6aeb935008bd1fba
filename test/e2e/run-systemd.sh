#!/bin/sh
# The real-systemd tier: the rig VM boots with systemd as PID 1 (rig/vm-stage2-systemd.sh),
# installs the Debian package (npm run package:deb, built here), and a real QEMU reaches
# the helper through pr-helper.socket (jobs/systemd.sh, tools/check-systemd.ts).
# Env: RIG_TIMEOUT, RIG_OUT, RIG_CONSOLE=1, RIG_SKIP_TSC=1, SMP (2). Root required.
# Exit 0 PASS, 1 FAIL, 125 rig failure.
set -eu
E2E_DIR=$(cd "$(dirname "$0")" && pwd)
RIG_DIR="$E2E_DIR/rig"
. "$RIG_DIR/lib.sh"
export SMP=${SMP:-2}
export RIG_STAGE2="$RIG_DIR/vm-stage2-systemd.sh"
# What run-tier.sh reports: the job runs the installed package, not a HELPER_CMD.
export HELPER_CMD="/usr/bin/pr-helper (the Debian package, started by systemd)"
[ -f "$REPO_ROOT/dist/scripts/package-deb.js" ] || { echo "FAIL systemd: dist/ missing: npx tsc -p tsconfig.json"; exit 125; }
PR_HELPER_DEB=$(cd "$REPO_ROOT" && node dist/scripts/package-deb.js) || { echo "FAIL systemd: package build"; exit 125; }
export PR_HELPER_DEB
export RIG_PASS_ENV="${RIG_PASS_ENV:-} PR_HELPER_DEB"
exec "$RIG_DIR/run-tier.sh" systemd "$E2E_DIR/jobs/systemd.sh" check-systemd
