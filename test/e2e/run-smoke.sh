#!/bin/sh
# Tier 1 smoke: the helper under test against LIO inside the rig VM (jobs/smoke-real-helper.sh).
# Env: HELPER_CMD (default /usr/bin/qemu-pr-helper), RIG_TIMEOUT, RIG_OUT, RIG_CONSOLE=1.
# Root required (9p passthrough). Exit 0 PASS, 1 FAIL, 125 rig failure.
set -eu
E2E_DIR=$(cd "$(dirname "$0")" && pwd)
exec "$E2E_DIR/rig/run-tier.sh" smoke-real-helper "$E2E_DIR/jobs/smoke-real-helper.sh" check-smoke
