#!/bin/sh
# dm-multipath tier: one LIO LUN behind three tcm_loop nexuses in the rig VM; node A
# reaches it through a dm-multipath map over two of them, node B (the second cluster
# node) through the third. The helper under test serves both; PR commands through the
# map must reach every path where the SCSI semantics require it, survive a path that
# is offline or whose transport fails, and look like a single-path LUN to node A
# (jobs/multipath.sh, tools/multipath-scenario.ts, checked by tools/multipath-check.ts).
# Env: HELPER_CMD (default: our daemon, node $REPO/dist/src/cli/main.js; the original
# qemu-pr-helper has no multipath support in Debian's build), RIG_TIMEOUT (default 240),
# RIG_OUT, RIG_CONSOLE=1, RIG_SKIP_TSC=1. Root required; dmsetup (Debian package dmsetup).
# Exit 0 PASS, 1 FAIL, 125 rig failure.
set -eu
E2E_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_ROOT=$(cd "$E2E_DIR/../.." && pwd)
export HELPER_CMD=${HELPER_CMD:-node $REPO_ROOT/dist/src/cli/main.js}
export RIG_TIMEOUT=${RIG_TIMEOUT:-240}
# The daemon itself must be built (the rig compiles only test/e2e and what it imports).
[ -f "$REPO_ROOT/dist/src/cli/main.js" ] || { echo "FAIL multipath: $REPO_ROOT/dist/src/cli/main.js missing (npx tsc -p tsconfig.json)"; exit 125; }
command -v dmsetup >/dev/null || { echo "FAIL multipath: dmsetup missing (apt-get install dmsetup)"; exit 125; }
exec "$E2E_DIR/rig/run-tier.sh" multipath "$E2E_DIR/jobs/multipath.sh" multipath-check
