#!/bin/sh
# Tier 1 differential: the scripted two-node PR sequence (tools/pr-sequence.ts) on LIO,
# once through the real /usr/bin/qemu-pr-helper and once through HELPER_CMD, each on a
# fresh LUN; every reply must be byte-identical (jobs/pr-differential.sh,
# tools/check-pr-differential.ts). The reference recording is left as
# <output>/seq-reference.json for Tier 1b.
# Env: HELPER_CMD (default /usr/bin/qemu-pr-helper, i.e. a self-test), REFERENCE_HELPER,
# RIG_TIMEOUT, RIG_OUT, RIG_CONSOLE=1. Root required. Exit 0 PASS, 1 FAIL, 125 rig failure.
set -eu
E2E_DIR=$(cd "$(dirname "$0")" && pwd)
export RIG_PASS_ENV="${RIG_PASS_ENV:-} REFERENCE_HELPER"
export REFERENCE_HELPER=${REFERENCE_HELPER:-/usr/bin/qemu-pr-helper}
exec "$E2E_DIR/rig/run-tier.sh" pr-differential "$E2E_DIR/jobs/pr-differential.sh" check-pr-differential
