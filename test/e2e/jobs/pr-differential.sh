#!/bin/sh
# pr-differential.sh — VM job for Tier 1 (run-differential.sh; checked on the host by
# tools/check-pr-differential.ts).
#
# The scripted two-node sequence of tools/pr-sequence.ts runs twice against LIO, each
# time on a freshly created LUN (PR generation 0, no registrations): first through the
# reference helper ($REFERENCE_HELPER, default the real /usr/bin/qemu-pr-helper), then
# through the helper under test ($HELPER_CMD). Each run's raw replies go to
# $RIG_OUT/seq-reference.json and $RIG_OUT/seq-candidate.json; the host compares them.
set -eu
. "$RIG_DIR/vm-lib.sh"
export PRH_SOCK=/run/prh.sock
SEQ="$REPO_ROOT/dist/test/e2e/tools/pr-sequence.js"
REFERENCE_HELPER=${REFERENCE_HELPER:-/usr/bin/qemu-pr-helper}
CANDIDATE_HELPER=$HELPER_CMD
: > "$RESULTS"
[ -f "$SEQ" ] || { echo "missing $SEQ: run npx tsc -p test/e2e/tsconfig.json" >&2; exit 125; }

jline versions kernel "$(uname -r)" \
    reference "$($REFERENCE_HELPER --version 2>&1 | head -n 1)" \
    qemu "$(qemu-system-x86_64 --version | head -n 1)"

run_sequence() { # LABEL HELPER_CMD
    label=$1 cmd=$2
    "$RIG_DIR/lio-setup.sh"
    . /run/rig.env
    jline "lio-setup-$label" disk_a "$DISK_A" disk_b "$DISK_B" init_a "$INIT_A" init_b "$INIT_B"
    drain_ua "$DISK_A" && drain_ua "$DISK_B" || exit 125
    sgp --in --read-keys "$DISK_A"
    jline "fresh-lun-$label" rc "$SGP_RC" generation "$(sgp_generation)" keys "$(sgp_keys)"

    HELPER_CMD=$cmd "$RIG_DIR/helper-ctl.sh" start
    jline "helper-start-$label" ok 1 cmd "$cmd"
    rc=0
    timeout -k 5 90 node "$SEQ" --socket "$PRH_SOCK" --disk-a "$DISK_A" --disk-b "$DISK_B" \
        --label "$label" --out "$RIG_OUT/seq-$label.json" || rc=$?
    jline "sequence-$label" rc "$rc"
    HELPER_CMD=$cmd "$RIG_DIR/helper-ctl.sh" stop || true
}

run_sequence reference "$REFERENCE_HELPER"
# A new LUN, so that even the PR generations of the two runs can be compared as they are.
"$RIG_DIR/lio-teardown.sh"
run_sequence candidate "$CANDIDATE_HELPER"
echo "differential job done: $(wc -l < "$RESULTS") result lines"
