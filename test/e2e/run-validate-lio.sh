#!/bin/sh
# pr-helper validate and pr-helper sg_persist on real LIO (jobs/validate-lio.sh, checked by
# tools/check-validate-lio.ts): validate's three profiles through our daemon with two
# tcm_loop nexuses, its diagnosis of a missing <db_root>/pr, what a SIGKILLed run leaves
# and how it is removed, and pr-helper sg_persist against Debian's sg_persist, stdout byte
# for byte and exit statuses.
# Env: HELPER_CMD (default: our daemon, node dist/src/cli/main.js; the job also runs its
# validate and sg_persist subcommands), RIG_TIMEOUT (default 900 s), RIG_OUT, RIG_CONSOLE=1.
# Root required (9p passthrough). Exit 0 PASS, 1 FAIL, 125 rig failure.
set -eu
E2E_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_ROOT=$(cd "$E2E_DIR/../.." && pwd)
export HELPER_CMD=${HELPER_CMD:-node $REPO_ROOT/dist/src/cli/main.js}
export RIG_TIMEOUT=${RIG_TIMEOUT:-900}
exec "$E2E_DIR/rig/run-tier.sh" validate-lio "$E2E_DIR/jobs/validate-lio.sh" check-validate-lio
